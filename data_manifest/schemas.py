"""Stage names and the fields each stage's cache stores per sample.

This is the contract between ``pipeline`` (writes) and ``train`` (reads). Arrays are
ragged along their first axis where noted; the store keeps them unpadded.
"""

SKELETONS = "skeletons"
FRAMES = "frames"
STITCH = "stitch"
RGB_FEATURES = "rgb-features"
LLM_FEATURES = "llm-features"

STAGE_ORDER = ("manifest", SKELETONS, FRAMES, STITCH, RGB_FEATURES, LLM_FEATURES)

SKELETON_FIELDS = {
    # (T, M, V, C) float32, T ragged: joints after denoising, actor selection and
    # translation (NTU, NW-UCLA; own data as given, remapped to its layout); M = persons
    # per sample (2 for NTU, 1 for NW-UCLA, own data: from its files), absent persons are
    # zeros; C = 3 for NTU and NW-UCLA, for own data the channels its cache params record
    # (xyz 3, xy 2, xy-score 3). T excludes frames where every person was empty.
    "joints": "float32 (T, M, V, C)",
    # (T, M, V, 2) float32: each joint's colour-image pixel coordinates (NTU colorX,
    # colorY); NaN where the dataset has none or the actor is absent in that frame.
    "color_xy": "float32 (T, M, V, 2)",
    # (T,) int32: index of each kept frame in the original sequence / video.
    "frame_index": "int32 (T,)",
    # scalar int: frame count of the original sequence (before empty frames were removed).
    "source_frames": "int",
    # scalar int: persons found with data (NTU: 1 or 2).
    "num_actors": "int",
}

# Fields a skeletons cache estimated from videos (pipeline extract-poses) adds to the above.
POSE_FIELDS = {
    # (T, M, V) float32 in [0, 1]: the pose model's likelihood that each joint is visible
    # (not hidden or outside the frame).
    "visibility": "float32 (T, M, V)",
    # str: what the estimation left out or found odd ('' if nothing).
    "notes": "str",
}

FRAME_FIELDS = {
    "jpeg": "uint8 (sum of JPEG byte lengths,): the m crops' JPEG files concatenated",
    "jpeg_lengths": "int64 (m,): byte length of each crop's JPEG, in time order",
    "frame_indices": "int64 (m,): video frame index of each crop",
    "boxes": "int32 (m, 4): crop box x0, y0, x1, y1 in video pixels (exclusive end)",
    "crop_source": "str list (m,): 'skeleton', 'nearest-skeleton', 'full-frame' or 'none'",
    "video_frames": "int: frame count of the video",
    "video_size": "int32 (2,): video width, height",
    "notes": "str: fallbacks taken for this sample, '; '-separated ('' if none)",
}

STITCH_FIELDS = {
    "image": "bytes: the stitched temporal image as a JPEG file",
    "size": "int32 (2,): image width, height",
}

RGB_FEATURE_FIELDS = {
    "feature": "float32 (D,): pooled image feature of the temporal image",
}

LLM_FEATURE_FIELDS = {
    # K = number of questions; per question k (fields suffixed by nothing: lists over K)
    "answers": "str list (K,): generated answer text per question",
    "token_ids": "int64 (sum L_k,): answer token ids, concatenated over questions",
    "token_counts": "int64 (K,): answer length L_k per question",
    "hidden": "float16 (sum L_k, D): answer tokens' hidden states, concatenated over questions",
    "pooled": "float32 (K, D): mean of each answer's token hidden states",
}
