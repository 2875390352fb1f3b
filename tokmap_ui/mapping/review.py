"""The reviewed token map: the generated map plus the audit log of human decisions (issue 8).

A :class:`ReviewedMap` joins a generated :class:`~tokmap_ui.mapping.tokenmap.TokenMap` (the
*proposal* for every target token) with the store's append-only event log: each reviewed
entry carries a :class:`~tokmap_ui.mapping.review_decision.Decision` (status, pinned sources,
comment, who), stored as the ``after`` JSON of its latest event. The current map = proposal +
decisions; any earlier state is the decisions as of an event id.

Writes go through the store's optimistic versioning: an edit names the entry version it was
based on (by default the one this object read), and a stale write raises
:class:`~tokmap_ui.errors.StaleEditError` naming the other reviewer's change.

Example:
    >>> # rm = ReviewedMap(store, map_id, base)      # base = the generated TokenMap
    >>> # rm.change(17, "ana", status="approved")    # -> the reviewed MapEntry
    >>> # rm.undo("ana"); rm.effective_token_map()   # what conversion and CMC decoding use
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from tokmap_ui.errors import StaleEditError, StoreError, TokenMapError
from tokmap_ui.mapping.review_decision import (Decision, RejectedFallback, Sources, check_sources, source_pairs,
                                               decision_json, plan_change, reviewed_entry)
from tokmap_ui.mapping.tokenmap import EntryMethod, EntryStatus, MapEntry, TokenMap
from tokmap_ui.store import EntryState, MapEdit, MapEvent, ReviewAction, Store

__all__ = ["RERUN_REVIEWER", "Decision", "RejectedFallback", "ReviewedMap", "Sources", "check_sources",
           "plan_change", "reviewed_entry"]
RERUN_REVIEWER = "tokmap-rerun"  # who records the conflict events of a re-run unless told otherwise


class ReviewedMap:
    """One stored token map under review: its generated base, every entry's decision and version.

    One object per reviewer session (it is not locked for use by several threads at once).

    Args:
        store: the open workspace.
        map_id: a ``token_maps`` row (see :func:`tokmap_ui.io.review_workspace.register_map_file`).
        base: the generated map that row points at (loaded by ``io``; algorithms take objects).
        as_of: an event id: a read-only view of the decisions just after that event (0 = before
            any review); writes are refused, :meth:`restore` on a live object brings it back.
    """

    def __init__(self, store: Store, map_id: int, base: TokenMap, as_of: int | None = None):
        self.store = store
        self.record = store.get_token_map(map_id)
        self.map_id = self.record.id
        _check_fits(self.record, base)
        self.base = base
        self.cache: dict[str, Any] = {}  # derived from ``base`` only (e.g. queue scores); cleared when it changes
        self._states: dict[int, EntryState] = {}
        self._decisions: dict[int, Decision] = {}
        self.last_event_id = 0
        self.as_of = None if as_of is None else int(as_of)
        for state in store.entry_states(self.map_id, as_of=self.as_of).values():
            self._put(state)
        if self.as_of is not None:
            self.last_event_id = self.as_of

    # ------------------------------------------------------------------ reading
    def _put(self, state: EntryState) -> None:
        self._states[state.target_id] = state
        decision = Decision.from_json(state.current)
        if decision is None:
            self._decisions.pop(state.target_id, None)
        else:
            self._decisions[state.target_id] = decision
        self.last_event_id = max(self.last_event_id, state.last_event_id)

    def refresh(self) -> set[int]:
        """Read events other sessions committed since the last read; return the changed target ids."""
        changed: set[int] = set()
        if self.as_of is not None:  # a view of the past does not move
            return changed
        for event in self.store.map_events(self.map_id, since=self.last_event_id):
            self._put(EntryState(self.map_id, event.target_id, event.entry_version, event.after, event.id,
                                 event.reviewer, event.time))
            changed.add(event.target_id)
        return changed

    def _reload(self, target_id: int) -> None:
        state = self.store.entry_state(self.map_id, target_id)
        if state is not None:
            self._put(state)

    def __len__(self) -> int:
        return len(self.base.entries)

    def _check_id(self, target_id: int) -> int:
        if not 0 <= int(target_id) < len(self.base.entries):
            raise StoreError(f"token map {self.map_id} ({self.record.name}) has no target id {target_id} "
                             f"(ids 0..{len(self.base.entries) - 1}). Fix: pick an id from `review list`.")
        return int(target_id)

    def version(self, target_id: int) -> int:
        """The entry's version as this object last read it (0 = never reviewed)."""
        state = self._states.get(int(target_id))
        return state.version if state else 0

    def state(self, target_id: int) -> EntryState | None:
        """The stored state (version, last reviewer and time) of a reviewed entry, else None."""
        return self._states.get(int(target_id))

    def decision(self, target_id: int) -> Decision | None:
        return self._decisions.get(int(target_id))

    def decisions(self) -> dict[int, Decision]:
        """Every entry that carries a decision (a copy)."""
        return dict(self._decisions)

    def entry(self, target_id: int) -> MapEntry:
        """The reviewed entry (proposal + decision)."""
        target_id = self._check_id(target_id)
        return reviewed_entry(self.base.entries[target_id], self._decisions.get(target_id))

    def history(self, target_id: int | None = None, reviewer: str | None = None) -> list[MapEvent]:
        """The audit log of the map (or one entry), oldest first."""
        return self.store.map_events(self.map_id, reviewer=reviewer, target_id=target_id)

    # ------------------------------------------------------------------ writing
    def change(self, target_id: int, reviewer: str, *, status: str | None = None,
               sources: Iterable | None = None, comment: str | None = None, use_proposal: bool = False,
               expected_version: int | None = None) -> MapEntry:
        """Record one reviewer's change to one entry (see :func:`plan_change`); return the stored entry.

        Args:
            expected_version: the version the change is based on; default the one this object read.

        Raises:
            StaleEditError: someone changed the entry since that version (this object re-reads it).
        """
        target_id = self._check_id(target_id)
        if expected_version is not None and expected_version != self.version(target_id):
            self.refresh()
        version = self.version(target_id) if expected_version is None else int(expected_version)
        checked = None if sources is None else check_sources(sources, self.base.source.vocab_size,
                                                             f"entry {target_id}: ")
        action, decision = plan_change(self._decisions.get(target_id), self.base.entries[target_id],
                                       reviewer.strip(), status=status, sources=checked, comment=comment,
                                       use_proposal=use_proposal)
        self._write(reviewer, [MapEdit(target_id, action, decision_json(decision), version)])
        return self.entry(target_id)

    def approve(self, target_id: int, reviewer: str, **kwargs: Any) -> MapEntry:
        return self.change(target_id, reviewer, status=EntryStatus.APPROVED.value, **kwargs)

    def reject(self, target_id: int, reviewer: str, **kwargs: Any) -> MapEntry:
        return self.change(target_id, reviewer, status=EntryStatus.REJECTED.value, **kwargs)

    def flag(self, target_id: int, reviewer: str, **kwargs: Any) -> MapEntry:
        return self.change(target_id, reviewer, status=EntryStatus.FLAGGED.value, **kwargs)

    def edit(self, target_id: int, reviewer: str, sources: Iterable, **kwargs: Any) -> MapEntry:
        return self.change(target_id, reviewer, sources=sources, **kwargs)

    def reset(self, target_id: int, reviewer: str, **kwargs: Any) -> MapEntry:
        return self.change(target_id, reviewer, status=EntryStatus.AUTO.value, **kwargs)

    def apply_decisions(self, reviewer: str, changes: Sequence[tuple[int, ReviewAction, Decision | None]],
                        *, expected: dict[int, int] | None = None, batch: str | None = None,
                        ref_event_id: int | None = None) -> list[int]:
        """Record many decisions all-or-nothing (imports, restores); return the new versions.

        ``expected`` maps target ids to the versions the decisions were based on (default:
        the versions this object read).
        """
        edits = [MapEdit(self._check_id(t), action, decision_json(decision),
                         (expected or {}).get(t, self.version(t)), ref_event_id=ref_event_id)
                 for t, action, decision in changes]
        return self._write(reviewer, edits, batch)

    def _write(self, reviewer: str, edits: list[MapEdit], batch: str | None = None) -> list[int]:
        if self.as_of is not None:
            raise StoreError(f"this is a read-only view of token map {self.map_id} as of event {self.as_of}. "
                             "Fix: open the map itself to change it, or restore that state first.")
        if not edits:
            return []
        try:
            versions = self.store.record_map_events(self.map_id, reviewer, edits, batch=batch)
        except StaleEditError:
            self.refresh()
            raise
        self.refresh()
        return versions

    # ------------------------------------------------------------------ undo, earlier states
    def undo(self, reviewer: str, *, skip_superseded: bool = False) -> list[MapEvent]:
        """Revert ``reviewer``'s latest change that is not undone yet (a whole batch at once).

        Other reviewers' events are never reverted: if one changed the entry afterwards, the
        undo is refused (or, with ``skip_superseded``, the reviewer's previous change is taken).
        Returns the reverted events.
        """
        self.refresh()
        reviewer = reviewer.strip()
        mine = self.store.map_events(self.map_id, reviewer=reviewer)
        by_id = {e.id: e for e in mine}
        undone = {e.ref_event_id for e in mine if e.action == ReviewAction.UNDO.value}
        undone_batches = {by_id[i].batch for i in undone if i in by_id and by_id[i].batch}
        candidates = [e for e in mine if e.action != ReviewAction.UNDO.value and e.id not in undone
                      and (e.batch is None or e.batch not in undone_batches)]
        while candidates:
            last = candidates[-1]
            group = [e for e in candidates if e.batch == last.batch] if last.batch else [last]
            blocker = self._superseded_by(group)
            if blocker is None:
                firsts: dict[int, MapEvent] = {}
                for event in group:  # an entry changed twice in one batch goes back to before the batch
                    firsts.setdefault(event.target_id, event)
                edits = [MapEdit(t, ReviewAction.UNDO, e.before, self.version(t), ref_event_id=e.id)
                         for t, e in firsts.items()]
                self._write(reviewer, edits, f"undo-{last.id}" if last.batch else None)
                return group
            if not skip_superseded:
                raise StaleEditError(
                    f"token map {self.map_id}, entry {blocker.target_id}: {blocker.describe()} after your "
                    "change, so undoing yours would overwrite it. Nothing was written. Fix: change the entry "
                    "directly, or undo with skip-superseded to revert your previous change instead.")
            taken = {e.id for e in group}
            candidates = [e for e in candidates if e.id not in taken]
        raise StoreError(f"{reviewer} has nothing left to undo on token map {self.map_id}. "
                         "Fix: check the reviewer name (`review history`).")

    def _superseded_by(self, group: list[MapEvent]) -> MapEvent | None:
        """The first later event on an entry of ``group`` by another reviewer that is still in effect."""
        first = {}
        for event in group:
            first.setdefault(event.target_id, event)
        later = [e for e in self.store.map_events(self.map_id, since=group[0].id)
                 if e.target_id in first and e.id > first[e.target_id].id]  # one query, even for a big import
        undone = {e.ref_event_id for e in later if e.action == ReviewAction.UNDO.value}
        reviewer = group[0].reviewer
        return next((e for e in later if e.reviewer != reviewer and e.action != ReviewAction.UNDO.value
                     and e.id not in undone), None)

    def decisions_as_of(self, event_id: int) -> dict[int, Decision]:
        """Every decision just after event ``event_id`` (0 = before any review)."""
        states = self.store.entry_states(self.map_id, as_of=int(event_id))
        return {t: d for t, s in states.items() if (d := Decision.from_json(s.current)) is not None}

    def restore(self, event_id: int, reviewer: str) -> int:
        """Make the map's decisions what they were just after ``event_id``, as one batch of ``restore`` events.

        Returns the number of entries changed. Nothing is deleted: the restore is itself in the log.
        """
        self.refresh()
        earlier = self.decisions_as_of(event_id)
        targets = sorted(set(earlier) | set(self._decisions))
        changes = [(t, ReviewAction.RESTORE, earlier.get(t)) for t in targets
                   if earlier.get(t) != self._decisions.get(t)]
        self.apply_decisions(reviewer, changes, batch=f"restore-{event_id}-{self.last_event_id}",
                             ref_event_id=int(event_id) if event_id else None)
        return len(changes)

    # ------------------------------------------------------------------ whole maps
    def reviewed_token_map(self, as_of: int | None = None) -> TokenMap:
        """The map as reviewers see it (rejected entries keep their sources), now or after event ``as_of``.

        An earlier state shows the decisions as they were over the *current* generated proposals.
        """
        decisions = self._decisions if as_of is None else self.decisions_as_of(as_of)
        entries = list(self.base.entries)
        for t, decision in decisions.items():
            entries[t] = reviewed_entry(entries[t], decision)
        return TokenMap(self.base.kind, self.base.target, self.base.source, dict(self.base.params), tuple(entries))

    def effective_token_map(self, rejected: RejectedFallback | str = RejectedFallback.UNMAPPED,
                            fallback: TokenMap | None = None) -> TokenMap:
        """The map conversion and CMC decoding consume: decisions applied, rejected entries replaced.

        Edited (manual) and approved entries win over the proposal; a rejected entry becomes
        unmapped, keeps its proposal, or takes ``fallback``'s entry, as ``rejected`` says.
        """
        rejected = RejectedFallback(rejected)
        if rejected is RejectedFallback.FALLBACK_MAP:
            if fallback is None:
                raise TokenMapError(None, "rejected entries fall back to a second map but none was given",
                                    fix="pass the fallback map (e.g. an FVT or mean baseline) or choose 'unmapped'")
            _check_fits(self.record, fallback)
        reviewed = self.reviewed_token_map()
        entries = list(reviewed.entries)
        for t, decision in self._decisions.items():
            if decision.status != EntryStatus.REJECTED.value:
                continue
            entry = entries[t]
            if rejected is RejectedFallback.UNMAPPED:
                sources, method = (), EntryMethod.UNMAPPED.value
            elif rejected is RejectedFallback.PROPOSAL:
                sources, method = self.base.entries[t].sources, self.base.entries[t].method
            else:
                sources, method = fallback.entries[t].sources, fallback.entries[t].method
            entries[t] = dataclasses.replace(entry, sources=sources, method=method)
        params = {**reviewed.params, "review": {"map": self.record.name, "map_id": self.map_id,
                                                "as_of_event": self.last_event_id, "rejected": rejected.value}}
        return TokenMap(reviewed.kind, reviewed.target, reviewed.source, params, tuple(entries))

    def merge_rerun(self, new_base: TokenMap, reviewer: str = RERUN_REVIEWER) -> list[int]:
        """Adopt a re-generated map, keeping every human decision; return the target ids now in conflict.

        A reviewed entry (any status but ``auto``) whose proposal differs from the one it was
        decided against gets a ``conflict`` event: its status, pinned sources and comment stay,
        and ``conflict`` records the old and new proposals, so the queue can show it. Re-running
        twice with the same map records nothing the second time. The caller then points the
        store's map at the new artifact (``io.review_files.rerun_map`` does both).
        """
        _check_fits(self.record, new_base)
        self.refresh()
        changes = []
        for t, decision in sorted(self._decisions.items()):
            proposal = new_base.entries[t].sources
            if decision.status == EntryStatus.AUTO.value or decision.basis == proposal:
                continue
            previous = decision.conflict["previous"] if decision.conflict else source_pairs(decision.basis)
            changes.append((t, ReviewAction.CONFLICT, dataclasses.replace(
                decision, basis=proposal, conflict={"previous": previous, "proposal": source_pairs(proposal)})))
        self.apply_decisions(reviewer, changes, batch=f"rerun-{self.last_event_id}-{len(changes)}")
        self.base = new_base
        self.cache.clear()
        return [t for t, _, _ in changes]


def _check_fits(record: Any, token_map: TokenMap) -> None:
    for side in ("target", "source"):
        ref, want = getattr(token_map, side), getattr(record, side)
        if (ref.vocab_size, ref.sha256) != (int(want["vocab_size"]), want["sha256"]):
            raise TokenMapError(None, f"the map's {side} vocabulary '{ref.name}' ({ref.vocab_size} tokens, "
                                      f"sha256 {ref.sha256[:12]}…) is not the one stored map {record.id} "
                                      f"('{record.name}') was registered with ('{want['name']}', "
                                      f"{want['vocab_size']} tokens, sha256 {str(want['sha256'])[:12]}…)",
                                fix="re-run the mapping with the same tokenizers, or register it as a new map")
