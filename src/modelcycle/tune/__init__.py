"""Tuning: LoRA SFT, DPO and prompt search on data curated from production.

Jobs run on the durable queue (kind ``tune.run``); training itself runs in a
subprocess (or on a Ray cluster) that reports progress, metrics and
checkpoints as JSON lines, so the worker survives a crash of the trainer and
a killed worker's job resumes from its last checkpoint.
"""
