//! A stream adapter that reads whatever the socket holds in one system call.
//!
//! The WebSocket codec reads at most its read-buffer size (2 KiB, kept small so that idle
//! connections stay small) per call, so a 10 KB announce took five `recv` calls and two relayed
//! answers arriving together two. [`ReadAhead`] reads up to 64 KiB at once into a per-thread
//! scratch buffer, hands the codec what it asked for and keeps the rest in a spill buffer that is
//! freed as soon as it is drained: an idle connection holds no extra memory.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes read from the socket in one call.
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// Wraps a stream; reads ahead as described in the module documentation, writes pass through.
pub struct ReadAhead<S> {
    inner: S,
    spill: Vec<u8>,
    consumed: usize,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            spill: Vec::new(),
            consumed: 0,
        }
    }

    /// Moves spilled bytes into `buf`; frees the spill buffer once it is drained.
    fn drain_spill(&mut self, buf: &mut ReadBuf<'_>) {
        let pending = &self.spill[self.consumed..];
        let count = pending.len().min(buf.remaining());
        buf.put_slice(&pending[..count]);
        self.consumed += count;
        if self.consumed == self.spill.len() {
            self.spill = Vec::new();
            self.consumed = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.consumed < this.spill.len() {
            this.drain_spill(buf);
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= SCRATCH_SIZE {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        SCRATCH.with(|scratch| {
            // Never re-entered (the inner stream is not a ReadAhead); read directly if it were.
            let Ok(mut scratch) = scratch.try_borrow_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            let mut ahead = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut ahead) {
                Poll::Ready(Ok(())) => {
                    let read = ahead.filled();
                    let count = read.len().min(buf.remaining());
                    buf.put_slice(&read[..count]);
                    if count < read.len() {
                        this.spill.extend_from_slice(&read[count..]);
                    }
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_get_every_byte_in_order_and_the_spill_is_freed() {
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        writer.write_all(&data).await.unwrap();
        drop(writer);
        let mut reader = ReadAhead::new(reader);
        let mut got = Vec::new();
        let mut chunk = [0u8; 2048];
        loop {
            let n = reader.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(reader.spill.capacity(), 0);
    }
}
