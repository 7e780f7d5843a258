"""Which models the feature stages can run, and loading them by kind."""

from __future__ import annotations

from pipeline.models.chat_inputs import HAND_BUILT_TYPES
from pipeline.models.devices import DTYPES
from pipeline.models.errors import ModelError
from pipeline.models.source import ModelSource, check_remote_code
from pipeline.models.vlm import GenerationSettings

BLIP_VQA = "blip-vqa"
CHAT = "chat"


def _chat_model_types() -> list[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    return sorted(t for t in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES if t != "blip")


def supported_vlms_text() -> str:
    chat = _chat_model_types()
    return (f"BLIP VQA (model_type 'blip' with architecture BlipForQuestionAnswering, e.g. "
            f"Salesforce/blip-vqa-base), or an image-text-to-text chat model with a chat "
            f"template (tested: {', '.join(HAND_BUILT_TYPES)}; transformers also knows "
            f"{len(chat)} more types, e.g. llava, llava_next, idefics3, smolvlm, "
            f"paligemma, gemma3, mllama)")


def vlm_kind(source: ModelSource, trust_remote_code: bool = False) -> str:
    """``blip-vqa`` or ``chat``; a clear error for anything else."""
    check_remote_code(source, trust_remote_code)
    if source.model_type == "blip":
        if "BlipForQuestionAnswering" in source.architectures:
            return BLIP_VQA
        raise ModelError(
            f"{source.name} is a BLIP checkpoint for "
            f"{', '.join(source.architectures) or 'an unknown task'}, "
            "not visual question answering; use a VQA one such as Salesforce/blip-vqa-base "
            "or Salesforce/blip-vqa-capfilt-large")
    if source.model_type in _chat_model_types() or source.needs_remote_code:
        return CHAT
    raise ModelError(f"{source.name} (model_type {source.model_type or 'missing'!r}, "
                     f"architectures {list(source.architectures)}) is not a supported "
                     f"vision-language model. Supported: {supported_vlms_text()}")


def load_vlm(source: ModelSource, *, device: str, dtype: str, settings: GenerationSettings,
             image_size: int | None = None, keep_aspect: bool = False,
             trust_remote_code: bool = False):
    kind = vlm_kind(source, trust_remote_code)
    torch_dtype = DTYPES[dtype]
    if kind == BLIP_VQA:
        from pipeline.models.blip_vqa import BlipVqa
        return BlipVqa(source, device, torch_dtype, settings, image_size=image_size,
                       keep_aspect=keep_aspect)
    if image_size is not None or keep_aspect:
        raise ModelError("--image-size and --keep-aspect apply to BLIP; a chat model's own "
                         "processor decides its input size")
    from pipeline.models.chat_vlm import ChatVlm
    return ChatVlm(source, device, torch_dtype, settings, trust_remote_code=trust_remote_code)
