use super::permit::Permit;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    pin::Pin,
    task::{Context, Poll},
};

pin_project! {
    /// A response body that holds its call's pool permit until the body is done.
    ///
    /// A connection is busy until its response body has been read, so the
    /// [`PoolLimit`](super::PoolLimit) service keeps the permit in the body rather than
    /// releasing it when the response head arrives. The permit is given back when the body
    /// reaches its end (a `None` frame, or [`is_end_stream`](Body::is_end_stream) after a
    /// frame), fails, or is dropped. Frames pass through unchanged.
    ///
    /// A body that is neither read to its end nor dropped keeps its permit: that is the
    /// leak that [`leak_threshold`](super::PoolLimitBuilder::leak_threshold) reports.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = PoolLimitLayer::builder(1).per_host(false).build()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from_static(b"hello"))))
    /// }));
    ///
    /// let response = svc.oneshot(http::Request::new(())).await?;
    /// assert_eq!(handle.snapshot().total.in_use, 1, "the body is not read yet");
    /// let body = response.into_body();
    /// assert!(body.holds_permit());
    /// assert_eq!(body.collect().await?.to_bytes(), "hello");
    /// assert_eq!(handle.snapshot().total.in_use, 0, "read to its end: the permit is back");
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct PoolBody<B> {
        #[pin]
        inner: B,
        permit: Permit,
    }
}

impl<B> PoolBody<B> {
    /// Wraps a body without a permit (to build responses of the same type elsewhere).
    ///
    /// ```
    /// use tower_fortify::pool::PoolBody;
    ///
    /// let body = PoolBody::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// assert!(!body.holds_permit());
    /// ```
    pub const fn new(inner: B) -> Self {
        PoolBody {
            inner,
            permit: Permit::NONE,
        }
    }

    pub(crate) fn with_permit(inner: B, mut permit: Permit) -> Self
    where
        B: Body,
    {
        // An empty body (HEAD, 204, `Content-Length: 0`) is done already.
        if inner.is_end_stream() {
            permit.give_back();
        }
        PoolBody { inner, permit }
    }

    /// Wraps a body with its permit, for a caller that gave the permit back already if the
    /// body is empty (see [`body_permit`](super::future::body_permit)).
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn held(inner: B, permit: Permit) -> Self {
        PoolBody { inner, permit }
    }

    /// Whether the body still holds its pool permit.
    ///
    /// ```
    /// let body = tower_fortify::pool::PoolBody::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// assert!(!body.holds_permit());
    /// ```
    pub fn holds_permit(&self) -> bool {
        self.permit.is_held()
    }

    /// Gets a reference to the inner body.
    ///
    /// ```
    /// use http_body::Body;
    ///
    /// let body = tower_fortify::pool::PoolBody::new(http_body_util::Full::new(bytes::Bytes::from("hi")));
    /// assert_eq!(body.get_ref().size_hint().exact(), Some(2));
    /// ```
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Gets a mutable reference to the inner body.
    ///
    /// ```
    /// let mut body = tower_fortify::pool::PoolBody::new(String::from("a"));
    /// body.get_mut().push('b');
    /// assert_eq!(body.get_ref(), "ab");
    /// ```
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Gets a pinned mutable reference to the inner body.
    ///
    /// ```
    /// let mut body = std::pin::pin!(tower_fortify::pool::PoolBody::new(String::from("a")));
    /// assert_eq!(&*body.as_mut().get_pin_mut(), "a");
    /// ```
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut B> {
        self.project().inner
    }

    /// Consumes the wrapper, returning the inner body. The permit is given back: the body
    /// is no longer tracked.
    ///
    /// ```
    /// let body = tower_fortify::pool::PoolBody::new(String::from("a"));
    /// assert_eq!(body.into_inner(), "a");
    /// ```
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for PoolBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        // Once the permit is given back, the inner poll is the body's own: returned straight,
        // it is written in place (held across the end-of-stream test below, it is copied).
        if !this.permit.is_held() {
            return this.inner.poll_frame(cx);
        }
        // The inner poll is returned as it came, looked at in place: taken out of its
        // `Poll` and wrapped again, a frame was moved twice more.
        let polled = this.inner.as_mut().poll_frame(cx);
        let done = match &polled {
            Poll::Pending => false,
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
        };
        if done {
            *this.permit = Permit::NONE;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
