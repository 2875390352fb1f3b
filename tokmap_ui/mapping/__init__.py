"""Token mapping: the shared :class:`TokenMap` artifact and the methods that build one.

``tokenmap`` holds the artifact; method modules (``pmmined``, ``tiktotok``, ``baselines``) each
build a :class:`TokenMap` from two :class:`~tokmap_ui.vocab.Vocabulary` objects.
"""

from tokmap_ui.mapping.tokenmap import FORMAT, EntryMethod, EntryStatus, MapEntry, TokenMap, VocabRef, paused_gc

__all__ = ["FORMAT", "EntryMethod", "EntryStatus", "MapEntry", "TokenMap", "VocabRef", "paused_gc"]
