//! An episode's camera frames, read in frame order: PNG bytes from the data parquet decoded
//! one frame at a time, or video decoded forward from the episode's start in its MP4 file
//! (`video.rs`, FFmpeg behind the `video` feature). Only the frame being replayed is held
//! decoded, so an hour-long episode costs one frame of memory per camera.

use std::path::{Path, PathBuf};

use brainstem_models::image::RgbImage;

use super::DatasetError;

#[cfg(feature = "video")]
#[path = "video.rs"]
mod video;

/// Where a camera's frames for one episode are.
pub enum CameraSource {
    Png {
        path: PathBuf,
        frames: Vec<Vec<u8>>,
    },
    /// A video file and the second in it where the episode starts.
    Video {
        path: PathBuf,
        start: f64,
    },
}

enum CameraReader<'a> {
    Png {
        path: &'a PathBuf,
        frames: &'a [Vec<u8>],
    },
    #[cfg(feature = "video")]
    Video(video::VideoStream),
}

pub struct FrameReader<'a> {
    cameras: Vec<CameraReader<'a>>,
    timestamps: &'a [f64],
}

impl<'a> FrameReader<'a> {
    pub(super) fn open(cameras: &'a [CameraSource], timestamps: &'a [f64]) -> Result<Self, DatasetError> {
        let cameras = cameras
            .iter()
            .map(|source| match source {
                CameraSource::Png { path, frames } => Ok(CameraReader::Png { path, frames }),
                CameraSource::Video { path, start } => open_video(path, *start),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { cameras, timestamps })
    }

    /// The views of frame `frame`, one per camera. Video is decoded forward: frames are asked
    /// for in increasing order.
    pub fn views(&mut self, frame: usize) -> Result<Vec<RgbImage>, DatasetError> {
        if frame >= self.timestamps.len() {
            return Err(DatasetError::Format {
                path: PathBuf::new(),
                reason: format!("frame {frame} of an episode of {}", self.timestamps.len()),
            });
        }
        self.cameras
            .iter_mut()
            .map(|camera| match camera {
                CameraReader::Png { path, frames } => decode_png(path, frames, frame),
                #[cfg(feature = "video")]
                CameraReader::Video(stream) => stream.frame_at(self.timestamps[frame]),
            })
            .collect()
    }
}

fn decode_png(path: &Path, frames: &[Vec<u8>], frame: usize) -> Result<RgbImage, DatasetError> {
    let bytes = frames.get(frame).ok_or_else(|| DatasetError::Format {
        path: path.to_path_buf(),
        reason: format!("no image for frame {frame}"),
    })?;
    RgbImage::decode(bytes).map_err(|e| DatasetError::Value {
        path: path.to_path_buf(),
        reason: format!("frame {frame}'s image: {e}"),
    })
}

#[cfg(feature = "video")]
fn open_video<'a>(path: &Path, start: f64) -> Result<CameraReader<'a>, DatasetError> {
    Ok(CameraReader::Video(video::VideoStream::open(path, start)?))
}

#[cfg(not(feature = "video"))]
fn open_video<'a>(path: &Path, _start: f64) -> Result<CameraReader<'a>, DatasetError> {
    Err(DatasetError::VideoNotCompiled {
        path: path.to_path_buf(),
    })
}
