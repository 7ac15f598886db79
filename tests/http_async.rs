//! The async driver over an in-memory `embedded-io-async` stream, with one provider shared by several
//! connections behind a lock (as an embassy application would with a blocking mutex).

mod http_common;

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use http_common::*;
use oauth2_devices::http::{self, Context};

/// An async view of [`MemStream`] that is pending every other call, like a real socket.
struct AsyncStream {
    inner: MemStream,
    ready: bool,
}

struct Yield<'a>(&'a mut bool);

impl Future for Yield<'_> {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if *self.0 {
            *self.0 = false;
            Poll::Ready(())
        } else {
            *self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl embedded_io_async::ErrorType for AsyncStream {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for AsyncStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Yield(&mut self.ready).await;
        embedded_io::Read::read(&mut self.inner, buf)
    }
}

impl embedded_io_async::Write for AsyncStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Yield(&mut self.ready).await;
        embedded_io::Write::write(&mut self.inner, buf)
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Polls a future to completion (the streams wake themselves).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn async_driver_serves_pipelined_fragmented_requests() {
    let shared = RefCell::new(Server::new());
    let cfg = config();
    let mut bytes = post_form("/oauth/device", "client_id=tv-demo&scope=profile");
    bytes.extend_from_slice(&get("/.well-known/oauth-authorization-server", &[]));
    bytes.extend_from_slice(&post_form("/oauth/token", "client_id=tv-demo"));

    // Two connections interleaved on one thread, one provider.
    let mut a = AsyncStream { inner: MemStream::new(&bytes, 1), ready: false };
    let mut b = AsyncStream { inner: MemStream::new(&bytes, 5), ready: false };
    let handler = |i: http::Framed<'_>, o: &mut [u8]| {
        let mut s = shared.borrow_mut();
        let s = &mut *s;
        let mut cx = Context { provider: &mut s.provider, app: &mut s.app, rng: &mut s.rng, now: s.now, peer: None };
        http::answer(&cfg, &mut cx, i, o)
    };
    let (mut in_a, mut out_a) = (vec![0u8; cfg.input_buffer_len()], vec![0u8; 4096]);
    let (mut in_b, mut out_b) = (vec![0u8; cfg.input_buffer_len()], vec![0u8; 4096]);
    let both = async {
        let fa = http::serve_async(&cfg, &mut a, &mut in_a, &mut out_a, handler);
        let fb = http::serve_async(&cfg, &mut b, &mut in_b, &mut out_b, handler);
        let (mut fa, mut fb) = (pin!(fa), pin!(fb));
        let (mut ra, mut rb) = (None, None);
        std::future::poll_fn(|cx| {
            if ra.is_none() {
                if let Poll::Ready(r) = fa.as_mut().poll(cx) {
                    ra = Some(r);
                }
            }
            if rb.is_none() {
                if let Poll::Ready(r) = fb.as_mut().poll(cx) {
                    rb = Some(r);
                }
            }
            if ra.is_some() && rb.is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        (ra.unwrap(), rb.unwrap())
    };
    let (ra, rb) = block_on(both);
    assert_eq!((ra, rb), (Ok(()), Ok(())));
    for stream in [&a, &b] {
        let r = parse_responses(&stream.inner.output);
        let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 400]);
        assert_eq!(r[2].error(), "invalid_request");
    }
    // Both devices got distinct codes from the one provider.
    assert_eq!(shared.borrow().provider.live_grants(1000), 2);
}
