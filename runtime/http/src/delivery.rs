//! A response body on its way to the client: handed to the protocol in chunks,
//! keeping its connection busy until the last one is out, and telling the
//! access log whether it got there whole.
//!
//! Handlers answer with one buffer ([`ResponseBody`]). Given whole, HTTP/2
//! would take it at once and hold it in its own buffers while the client's
//! flow-control window lets it out, so the end of the body would say nothing
//! about its delivery; in chunks, hyper takes the next one only when the
//! stream has room for it. Small bodies stay one chunk, and the length is
//! unchanged, so Content-Length is too.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};

use crate::activity::Serving;
use crate::app::Exchange;
use crate::handler::ResponseBody;

/// Bodies longer than this are handed over in chunks of this size.
pub const CHUNK: usize = 64 * 1024;

/// A response body being written; ends its exchange (logged whole, or cut if
/// dropped before its end) and its hold on the connection when dropped.
pub struct Delivery {
    body: ResponseBody,
    /// What is left of a body being chunked.
    rest: Bytes,
    chunked: bool,
    exchange: Option<Exchange>,
    serving: Serving,
}

impl Delivery {
    /// `response`, as the handler gave it, to be written on the connection
    /// `serving` holds.
    pub fn wrap(
        response: Response<ResponseBody>,
        exchange: Exchange,
        mut serving: Serving,
    ) -> Response<Delivery> {
        serving.answered();
        if response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            serving.closing();
        }
        response.map(|body| Delivery {
            body,
            rest: Bytes::new(),
            chunked: false,
            exchange: Some(exchange),
            serving,
        })
    }

    fn chunk(&mut self) -> Frame<Bytes> {
        let chunk = self.rest.split_to(CHUNK.min(self.rest.len()));
        if !self.rest.is_empty() {
            // The last chunk's progress is the body's end.
            self.serving.sent();
        }
        Frame::data(chunk)
    }
}

impl Body for Delivery {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            let frame = match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                other => return other,
            };
            match frame.into_data() {
                Ok(data) if data.len() > CHUNK => {
                    this.rest = data;
                    this.chunked = true;
                }
                Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            }
        }
        Poll::Ready(Some(Ok(this.chunk())))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.body.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower() + rest);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let Some(mut exchange) = self.exchange.take() else {
            return;
        };
        if !self.is_end_stream() {
            exchange.cut();
        } else if self.chunked && !self.serving.http2() {
            // HTTP/1 holds up to a few hundred kilobytes of it yet: the
            // exchange ends when those are written, or is cut if they never
            // are. (A small body is written with the next flush, and HTTP/2
            // writes its frames from its own queue: for those, the body's end
            // is the exchange's.)
            self.serving.when_flushed(move |flushed| {
                if !flushed {
                    exchange.cut();
                }
            });
        }
    }
}
