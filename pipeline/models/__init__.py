"""Loading the models the feature stages run, through transformers.

- :mod:`pipeline.models.source`: find a model (hub id or local directory), read its config,
  record its name and revision, without loading weights.
- :mod:`pipeline.models.registry`: which vision-language models are supported; load one.
- :mod:`pipeline.models.blip_vqa`, :mod:`pipeline.models.chat_vlm`: the two VLM families.
- :mod:`pipeline.models.image_encoder`: CNN/ViT image backbones for the RGB feature.
"""
