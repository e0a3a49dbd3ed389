//! A deterministic gzip encoder that is fast on the data layers are made
//! of and uses every core.
//!
//! The input is cut into chunks of [`CHUNK`] bytes; each chunk is encoded
//! on its own (a fresh deflate state, ending byte-aligned with a sync
//! flush), so chunks can be encoded in parallel and concatenated into one
//! gzip member. Inside a chunk, every [`BLOCK`] whose byte entropy shows
//! deflate could not shrink it (already compressed files, random data) is
//! written as a stored block instead of being run through the compressor,
//! which would spend most of its time there only to make it larger.
//!
//! The output depends only on the input bytes, the constants here and the
//! deflate library's version: never on the number of threads or on how
//! reads return the input, so the same layer always gives the same digest.

use std::io::{self, Read, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes encoded independently of each other.
const CHUNK: usize = 1 << 20;
/// Bytes judged compressible or not at a time; also the most a stored
/// block holds (its length field is 16 bits).
const BLOCK: usize = 64 * 1024 - 1;
/// Blocks with more bits of byte entropy than this are stored as they
/// are: deflate's Huffman coding cannot win anything on them, and its
/// matches (within 32 KiB) rarely exist in such data.
const STORE_ABOVE_BITS: f64 = 7.9;
/// The deflate level of the blocks that are compressed.
const LEVEL: u32 = 1;
/// Chunks encoded at once at most.
const MAX_THREADS: usize = 4;

/// gzip header: no name, mtime 0, OS "unknown", as dockerd's is fixed too.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// The last deflate block: an empty fixed-Huffman block marked final.
const LAST_BLOCK: [u8; 2] = [0x03, 0x00];

/// Gzip all of `src` into `dst`. Returns the bytes written.
pub fn encode<R: Read, W: Write>(src: &mut R, dst: &mut W) -> io::Result<u64> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS);
    dst.write_all(&HEADER)?;
    let mut written = HEADER.len() as u64;
    let mut crc = Crc::new();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.clear();
        let mut eof = false;
        while chunks.len() < threads && !eof {
            let c = read_chunk(src)?;
            eof = c.len() < CHUNK;
            if !c.is_empty() {
                chunks.push(c);
            }
        }
        for c in &chunks {
            crc.update(c);
        }
        let encoded = encode_all(&chunks)?;
        for e in &encoded {
            dst.write_all(e)?;
            written += e.len() as u64;
        }
        if eof {
            break;
        }
    }
    dst.write_all(&LAST_BLOCK)?;
    dst.write_all(&crc.sum().to_le_bytes())?;
    dst.write_all(&crc.amount().to_le_bytes())?;
    Ok(written + (LAST_BLOCK.len() + 8) as u64)
}

/// Up to [`CHUNK`] bytes; fewer only at the end of the input.
fn read_chunk<R: Read>(src: &mut R) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    src.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn encode_all(chunks: &[Vec<u8>]) -> io::Result<Vec<Vec<u8>>> {
    if chunks.len() <= 1 {
        return chunks.iter().map(|c| encode_chunk(c)).collect();
    }
    std::thread::scope(|s| {
        let jobs: Vec<_> = chunks[1..]
            .iter()
            .map(|c| s.spawn(move || encode_chunk(c)))
            .collect();
        let mut out = vec![encode_chunk(&chunks[0])?];
        for j in jobs {
            out.push(
                j.join()
                    .map_err(|_| io::Error::other("gzip worker panicked"))??,
            );
        }
        Ok(out)
    })
}

/// One chunk as byte-aligned, non-final deflate blocks.
fn encode_chunk(chunk: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 16 + 64);
    let mut deflate: Option<Compress> = None;
    let mut run_start = 0;
    let mut run_compress = false;
    let blocks: Vec<&[u8]> = chunk.chunks(BLOCK).collect();
    let mut at = 0;
    for (i, b) in blocks.iter().enumerate() {
        let compress = !incompressible(b);
        if i > 0 && compress != run_compress {
            emit(&chunk[run_start..at], run_compress, &mut deflate, &mut out)?;
            run_start = at;
        }
        run_compress = compress;
        at += b.len();
    }
    emit(&chunk[run_start..at], run_compress, &mut deflate, &mut out)?;
    Ok(out)
}

fn emit(
    data: &[u8],
    compress: bool,
    deflate: &mut Option<Compress>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if !compress {
        for b in data.chunks(BLOCK) {
            // BFINAL 0, BTYPE 00, then LEN and its complement; the stream
            // is byte-aligned here, so the header is one whole byte.
            let len = b.len() as u16;
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(b);
        }
        return Ok(());
    }
    // Earlier output of this chunk may be stored blocks the compressor
    // never saw: it starts afresh so its matches only point into its own
    // input.
    let z = deflate.get_or_insert_with(|| Compress::new(Compression::new(LEVEL), false));
    z.reset();
    let start_in = z.total_in();
    loop {
        out.reserve(data.len() / 2 + 1024);
        let consumed = (z.total_in() - start_in) as usize;
        let status = z
            .compress_vec(&data[consumed..], out, FlushCompress::Sync)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let done = (z.total_in() - start_in) as usize == data.len();
        // With all input taken, the flush is complete once the output
        // buffer was not filled up.
        if done && out.len() < out.capacity() {
            return Ok(());
        }
        if status == Status::StreamEnd {
            return Err(io::Error::other("deflate ended early"));
        }
    }
}

/// Whether the byte entropy of `b` says deflate would not make it smaller.
fn incompressible(b: &[u8]) -> bool {
    if b.len() < 4096 {
        return false;
    }
    // Four tables, so runs of one byte value do not wait on each other's
    // increments.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = b.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &x in quads.remainder() {
        counts[0][x as usize] += 1;
    }
    let n = b.len() as f64;
    let mut bits = 0.0;
    let [c0, c1, c2, c3] = &counts;
    for (((a, b), c), d) in c0.iter().zip(c1).zip(c2).zip(c3) {
        let c = a + b + c + d;
        if c > 0 {
            let p = c as f64 / n;
            bits -= p * p.log2();
        }
    }
    bits > STORE_ABOVE_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn text(n: usize) -> Vec<u8> {
        let words = ["layer ", "image ", "berth ", "registry ", "push\n", "tar "];
        let mut out = Vec::new();
        let mut i = 0usize;
        while out.len() < n {
            out.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
            i += 1;
        }
        out.truncate(n);
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = encode(&mut &data[..], &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    /// Hands out at most 7 bytes per read.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn round_trips_mixed_data_of_any_size() {
        for n in [0, 1, 4095, BLOCK, CHUNK, CHUNK + 1, 5 * CHUNK + 12345] {
            let mut data = noise(n / 2, n as u64);
            data.extend(text(n - n / 2));
            assert_eq!(gunzip(&gz(&data)), data, "{n} bytes");
        }
    }

    #[test]
    fn noise_is_stored_and_text_compressed() {
        let data = noise(3 * CHUNK, 7);
        let out = gz(&data);
        assert!(out.len() < data.len() + data.len() / 1000, "{}", out.len());
        let data = text(3 * CHUNK);
        assert!(gz(&data).len() < data.len() / 4);
    }

    #[test]
    fn output_does_not_depend_on_how_reads_return() {
        let mut data = text(2 * CHUNK + 999);
        data.extend(noise(CHUNK, 3));
        let whole = gz(&data);
        let mut trickled = Vec::new();
        encode(&mut Trickle(&data), &mut trickled).unwrap();
        assert_eq!(whole, trickled);
        assert_eq!(gz(&data), whole);
    }
}
