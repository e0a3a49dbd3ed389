//! Request bodies a handler left unfinished are read before the answer is
//! sent (a refusal, or a tar upload whose reader stopped at the archive's
//! end while the client still sends padding).
//!
//! A handler that answers an error before reading the whole body (a copy
//! into a read-only path, an unknown container, an endpoint nobody
//! implements) would otherwise make hyper close the connection while the
//! client is still writing; Go clients then report `broken pipe` instead
//! of the error. Go's own server reads a little of such a body for the same
//! reason. Every request body is wrapped so that, when the handler drops it
//! unfinished, the rest comes back to the middleware, which reads and
//! discards up to [`DRAIN_LIMIT`] bytes before answering.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

/// How much of a refused body is read before the connection is given up:
/// enough for any CLI upload of a few files or a small build context.
pub const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// A request body that hands its unread rest back when dropped.
pub struct ReturnOnDrop {
    inner: Option<Body>,
    finished: bool,
    back: Option<oneshot::Sender<Body>>,
}

/// Where the unread rest of a dropped body arrives (nothing to wait for
/// when the request had no body).
pub struct Unread(Option<oneshot::Receiver<Body>>);

pub fn wrap(body: Body) -> (Body, Unread) {
    if body.is_end_stream() {
        return (body, Unread(None));
    }
    let (tx, rx) = oneshot::channel();
    let wrapped = ReturnOnDrop {
        finished: false,
        inner: Some(body),
        back: Some(tx),
    };
    (Body::new(wrapped), Unread(Some(rx)))
}

impl Unread {
    /// Reads and discards what the handler left of its body, if it has
    /// dropped it already (a body still held by a running task is left to it).
    pub async fn drain(mut self) {
        let Some(Ok(mut body)) = self.0.as_mut().map(|rx| rx.try_recv()) else {
            return;
        };
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read += data.len();
                if read > DRAIN_LIMIT {
                    return;
                }
            }
        }
    }
}

impl HttpBody for ReturnOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}

impl Drop for ReturnOnDrop {
    fn drop(&mut self) {
        if let (Some(inner), Some(back)) = (self.inner.take(), self.back.take()) {
            if !self.finished && !inner.is_end_stream() {
                let _ = back.send(inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_body_comes_back_and_a_read_one_does_not() {
        let (body, unread) = wrap(Body::from_stream(futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(Bytes::from_static(b"a")),
            Ok(Bytes::from_static(b"b")),
        ])));
        drop(body);
        let mut rx = unread.0.expect("a body to wait for");
        let mut rest = rx.try_recv().expect("the unread body comes back");
        let first = rest.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "a");

        let (body, unread) = wrap(Body::from("whole"));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "whole");
        let mut rx = unread.0.expect("a body to wait for");
        assert!(rx.try_recv().is_err(), "a finished body is not handed back");

        let (_, unread) = wrap(Body::empty());
        assert!(unread.0.is_none(), "no body, nothing to wait for");
    }
}
