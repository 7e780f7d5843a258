"""Reading videos with OpenCV: probing, choosing frames, decoding only the chosen ones."""

from pipeline.video.reader import VideoInfo, VideoReader, open_video
from pipeline.video.selection import FrameSelection, select_frames

__all__ = ["VideoInfo", "VideoReader", "open_video", "FrameSelection", "select_frames"]
