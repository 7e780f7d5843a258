"""Cross-dataset transfer: a run evaluated on another dataset's WORKDIR (its skeletons
converted to the run's layout and persons, its classes sent to the run's through a class
map, optionally with the run's FRM refinement on the target's LLM features), and new runs
started from a run's weights with the classifier re-mapped. See ``docs/transfer.md``."""

# persons a target lacks: zeros (MMCL's authors), or copies of the first person (CTR-GCN's
# NTU120 data); here so that the CLI reads it without importing torch
PAD_CHOICES = ("zero", "copy")
