"""Training: short CLM/MLM fine-tunes (``finetune``), shared data/eval helpers (``data``),
JSON-lines progress (``progress``), pickle-free checkpoints (``checkpoint``).

Import from the submodules; this package imports nothing heavy on its own.

Modules:
    finetune    FinetuneConfig, FinetuneResult, finetune()
    data        TextBlocks, mask_tokens, clm_loss, mlm_loss, evaluate_loss_per_byte, EvalResult
    options     Objective, Phase (Enum + parse), trainable_parameters()
    progress    Progress (JSON lines / tqdm), parse_event()
    checkpoint  save_checkpoint, load_checkpoint, latest_checkpoint
    rundir      the run folder: config.json, metrics.jsonl, final model
"""
