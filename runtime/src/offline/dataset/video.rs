//! Video frames through Debian's FFmpeg libraries (ffmpeg-next; AV1 through libdav1d, as
//! lerobot encodes by default): an episode's frames are decoded forward from where the
//! episode starts in its file and converted to RGB, one at a time.

use std::path::{Path, PathBuf};

use brainstem_models::image::RgbImage;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use super::super::DatasetError;

pub struct VideoStream {
    path: PathBuf,
    input: ffmpeg::format::context::Input,
    decoder: ffmpeg::decoder::Video,
    stream: usize,
    time_base: f64,
    /// Half a frame period: how far a frame's time may be from the one asked for.
    tolerance: f64,
    start: f64,
    scaler: Option<scaling::Context>,
    pending: Option<(f64, ffmpeg::frame::Video)>,
    draining: bool,
}

impl VideoStream {
    /// Opens `path` and seeks to `start` seconds, where the episode begins.
    pub fn open(path: &Path, start: f64) -> Result<Self, DatasetError> {
        let error = |reason: String| DatasetError::Video {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(DatasetError::Io {
                path: path.to_path_buf(),
                reason: "no such video file".into(),
            });
        }
        ffmpeg::init().map_err(|e| error(format!("FFmpeg did not start: {e}")))?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        let mut input = ffmpeg::format::input(&path).map_err(|e| error(e.to_string()))?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| error("no video stream".into()))?;
        let (index, time_base, rate) = (stream.index(), f64::from(stream.time_base()), stream.avg_frame_rate());
        let context =
            ffmpeg::codec::context::Context::from_parameters(stream.parameters()).map_err(|e| error(e.to_string()))?;
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| error(format!("no decoder for this stream's codec: {e}")))?;
        let fps = f64::from(rate);
        let tolerance = if fps.is_finite() && fps > 0.0 { 0.5 / fps } else { 1e-3 };
        if start > 0.0 {
            let ts = (start * 1e6) as i64;
            input
                .seek(ts, ..ts + 1)
                .map_err(|e| error(format!("seeking to {start} s: {e}")))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            input,
            decoder,
            stream: index,
            time_base,
            tolerance,
            start,
            scaler: None,
            pending: None,
            draining: false,
        })
    }

    fn error(&self, reason: String) -> DatasetError {
        DatasetError::Video {
            path: self.path.clone(),
            reason,
        }
    }

    /// The frame shown `seconds` after the episode's start.
    pub fn frame_at(&mut self, seconds: f64) -> Result<RgbImage, DatasetError> {
        let target = self.start + seconds;
        loop {
            let (time, frame) = match self.pending.take() {
                Some(pending) => pending,
                None => self
                    .next_frame()?
                    .ok_or_else(|| self.error(format!("the video ends before {target:.3} s")))?,
            };
            if time < target - self.tolerance {
                continue;
            }
            if time > target + self.tolerance {
                self.pending = Some((time, frame));
                return Err(self.error(format!("no frame at {target:.3} s; the next one is at {time:.3} s")));
            }
            return self.rgb_image(&frame);
        }
    }

    fn next_frame(&mut self) -> Result<Option<(f64, ffmpeg::frame::Video)>, DatasetError> {
        loop {
            let mut frame = ffmpeg::frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
                    return Ok(Some((pts as f64 * self.time_base, frame)));
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => return Err(self.error(format!("decoding: {e}"))),
            }
            if self.draining {
                return Ok(None);
            }
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream => {
                    self.decoder
                        .send_packet(&packet)
                        .map_err(|e| self.error(format!("decoding: {e}")))?;
                }
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => {
                    self.draining = true;
                    self.decoder
                        .send_eof()
                        .map_err(|e| self.error(format!("decoding: {e}")))?;
                }
                Err(e) => return Err(self.error(format!("reading: {e}"))),
            }
        }
    }

    fn rgb_image(&mut self, frame: &ffmpeg::frame::Video) -> Result<RgbImage, DatasetError> {
        let (width, height) = (frame.width(), frame.height());
        if self.scaler.is_none() {
            let scaler = scaling::Context::get(
                frame.format(),
                width,
                height,
                Pixel::RGB24,
                width,
                height,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| self.error(format!("converting {:?} to RGB: {e}", frame.format())))?;
            self.scaler = Some(scaler);
        }
        let mut rgb = ffmpeg::frame::Video::empty();
        if let Some(scaler) = self.scaler.as_mut() {
            scaler.run(frame, &mut rgb).map_err(|e| DatasetError::Video {
                path: self.path.clone(),
                reason: format!("converting to RGB: {e}"),
            })?;
        }
        let stride = rgb.stride(0);
        let row = width as usize * 3;
        let data = rgb.data(0);
        let mut pixels = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        RgbImage::new(width, height, pixels).map_err(|e| self.error(e.to_string()))
    }
}
