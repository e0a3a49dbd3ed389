//! The Engine API's multiplexed stream format (attach, exec and logs
//! without a TTY, and berth-shim's stdio connection): frames of an 8-byte
//! header (stream byte, three zero bytes, big-endian u32 payload length)
//! followed by the payload.

/// One frame: header and payload.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX) as usize;
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&data[..len]);
    out
}

/// Splits framed bytes, pushed in pieces of any size, into (stream,
/// payload) frames.
#[derive(Default)]
pub struct FrameParser {
    buf: Vec<u8>,
}

impl FrameParser {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let header: [u8; 8] = self.buf.get(..8)?.try_into().ok()?;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let payload = self.buf.get(8..8usize.checked_add(len)?)?.to_vec();
        self.buf.drain(..8 + len);
        Some((header[0], payload))
    }

    /// Bytes received that do not form a complete frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_back_whole() {
        let mut wire = frame(1, b"hello");
        wire.extend(frame(2, b""));
        wire.extend(frame(2, &[7; 300]));
        for split in 0..wire.len() {
            let mut p = FrameParser::default();
            p.push(&wire[..split]);
            let mut got = Vec::new();
            while let Some(f) = p.next_frame() {
                got.push(f);
            }
            p.push(&wire[split..]);
            while let Some(f) = p.next_frame() {
                got.push(f);
            }
            assert_eq!(
                got,
                vec![(1, b"hello".to_vec()), (2, vec![]), (2, vec![7; 300])]
            );
            assert_eq!(p.pending(), 0);
        }
    }
}
