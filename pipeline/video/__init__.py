"""Reading videos: probing, choosing frames, decoding only the chosen ones (OpenCV, or
PyAV with a key-frame index when it is installed)."""

from pipeline.video.methods import METHODS, open_reader, pyav_available, resolve_method
from pipeline.video.reader import VideoInfo, VideoReader, open_video
from pipeline.video.selection import (FrameSelection, keyframe_tolerance, nearest_keyframes,
                                      select_frames)

__all__ = ["METHODS", "open_reader", "pyav_available", "resolve_method", "VideoInfo",
           "VideoReader", "open_video", "FrameSelection", "keyframe_tolerance",
           "nearest_keyframes", "select_frames"]
