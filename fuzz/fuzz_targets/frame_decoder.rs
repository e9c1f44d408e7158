//! Arbitrary bytes as a client's byte stream, fed to `parse_frame` the way the server's read
//! loop does. Nothing may panic; every frame that decodes must survive re-encoding; and how the
//! bytes are split into reads must not change what comes out.
//!
//! Input layout: byte 0 picks frame_max, byte 1 the read size; the rest is the stream.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use warren_protocol::{parse_frame, BytesMut, Frame, FrameError};

/// Parses `stream` arriving in reads of `read_size` bytes, until it ends or fails.
fn parse_stream(
    stream: &[u8],
    frame_max: u32,
    read_size: usize,
) -> (Vec<Frame>, Option<FrameError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for read in stream.chunks(read_size) {
        buf.extend_from_slice(read);
        loop {
            match parse_frame(&mut buf, frame_max) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                // The server closes the connection on the first framing error.
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let [max_pick, read_pick, stream @ ..] = data else {
        return;
    };
    let frame_max = common::FRAME_MAXES[*max_pick as usize % common::FRAME_MAXES.len()];
    let read_size = *read_pick as usize + 1;

    let (frames, error) = parse_stream(stream, frame_max, stream.len().max(1));
    let (split_frames, split_error) = parse_stream(stream, frame_max, read_size);
    // How the stream was cut into reads must not matter. (Frames holding a NaN are not equal to
    // themselves; for those the count has to do, and `check_frame` compares their encodings.)
    assert_eq!(error, split_error, "read size changed the outcome");
    assert_eq!(
        frames.len(),
        split_frames.len(),
        "read size changed the frames"
    );
    if !common::has_nan(&frames) {
        assert_eq!(frames, split_frames);
    }

    for frame in &frames {
        common::check_frame(frame, frame_max);
    }
});
