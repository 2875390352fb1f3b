"""Cross-model control (CMC, Wu et al. 2024): decode a host LLM steered by a small trained delta.

Modules:
    combine   DeltaShift: ``log_softmax(host) + α·(delta[map] − centre)``; index_from_token_map
    sync      DeltaTokens (trailing-window re-encode for other vocabularies), Detokenizer
    runner    CachedLM: batch stepping with one KV cache, per-row rollback by masking
    fastlm    FastLM: the same with a lean forward for GPT-2/Llama deltas (exact; ~3x less overhead)
    decode    GenerateConfig, CmcPair, generate(), stream_generate(), sample()
    explain   per-step host top tokens and the delta's shift on them
    arena     run_arena(): every host alone and + delta, streamed side by side
    evaluate  forget/retain per-byte loss of host vs host + delta

Training the delta lives in :mod:`tokmap_ui.train.delta`; the token map in
:mod:`tokmap_ui.mapping.pmmined`. Import from the submodules; this package imports nothing heavy.
"""
