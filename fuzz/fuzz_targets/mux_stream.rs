//! The multiplexed stream decoder: frames come back whole and in order
//! however the bytes are split, and arbitrary bytes never make it panic
//! or hand out a frame that was not sent.
#![no_main]

use berth_common::mux::{frame, FrameParser};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    frames: Vec<(u8, Vec<u8>)>,
    /// Where the encoded bytes are cut into pushes.
    cuts: Vec<u16>,
    /// Arbitrary bytes pushed after the frames.
    tail: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut wire = Vec::new();
    for (stream, payload) in &input.frames {
        wire.extend(frame(*stream, payload));
    }
    let mut p = FrameParser::default();
    let mut got = Vec::new();
    let mut at = 0usize;
    for cut in &input.cuts {
        let end = (at + *cut as usize).min(wire.len());
        p.push(&wire[at..end]);
        at = end;
        while let Some(f) = p.next_frame() {
            got.push(f);
        }
    }
    p.push(&wire[at..]);
    while let Some(f) = p.next_frame() {
        got.push(f);
    }
    assert_eq!(got, input.frames);
    assert_eq!(p.pending(), 0);
    // Garbage after the frames: whatever comes out is a prefix-consistent
    // split of those bytes.
    p.push(&input.tail);
    let mut consumed = 0usize;
    while let Some((stream, payload)) = p.next_frame() {
        let header = &input.tail[consumed..consumed + 8];
        assert_eq!(header[0], stream);
        assert_eq!(
            &input.tail[consumed + 8..consumed + 8 + payload.len()],
            &payload[..]
        );
        consumed += 8 + payload.len();
    }
    assert_eq!(consumed + p.pending(), input.tail.len());
});
