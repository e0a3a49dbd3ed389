//! Request bodies that stop arriving end the request.
//!
//! hyper times out slow request headers, but a client that sends headers
//! and then trickles (or never finishes) its body would hold a connection
//! and a handler forever. Every request body is wrapped so that a gap of
//! [`IDLE`] without a byte fails the body read; the handler answers with an
//! error and the connection is closed. Only gaps count, so an upload that
//! keeps sending may take as long as it needs, and streams that send no
//! body (attach after the upgrade, logs, events) are not affected.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{sleep, Instant, Sleep};

/// Longest pause allowed between two pieces of a request body.
pub const IDLE: Duration = Duration::from_secs(30);

pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(sleep(idle)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body timed out: nothing received for {0:?}")]
pub struct BodyTimedOut(Duration);

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let idle = this.idle;
                this.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::info!("closing a request whose body stalled for {:?}", this.idle);
                    Poll::Ready(Some(Err(BodyTimedOut(this.idle).into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_and_a_steady_one_does_not() {
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes, axum::BoxError>::new(1);
        let mut wrapped = IdleTimeout::new(body, Duration::from_secs(5));
        let sender = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if tx.send_data(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
            }
            // Then stall for good, keeping the body open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let mut got = 0;
        let err = loop {
            match wrapped.frame().await {
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break e,
                None => panic!("the body ended instead of timing out"),
            }
        };
        assert_eq!(got, 4, "a body that keeps sending (12 s in all) was cut");
        assert!(err.to_string().contains("timed out"), "{err}");
        sender.abort();
    }
}
