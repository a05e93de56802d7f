//! Methods on tower's [`ServiceBuilder`] for this crate's layers.

use tower::ServiceBuilder;
use tower_layer::Stack;

/// Extension trait that adds this crate's layers to tower's [`ServiceBuilder`], one method
/// per layer, in the style of tower-http's `ServiceBuilderExt`.
///
/// Layers whose settings can be invalid are built (and validated) first, then handed over;
/// the methods never fail. The trait is sealed: it is implemented for `ServiceBuilder`
/// only. Method names avoid `ServiceBuilder`'s own (`retry`, `timeout`, ...), which would
/// win over a trait method.
///
// The example uses three of the optional layers: it is compiled with them only.
#[cfg_attr(
    all(feature = "retry", feature = "circuit-breaker", feature = "pool"),
    doc = r#"
```
use std::time::Duration;
use tower::ServiceBuilder;
use tower_fortify::circuit_breaker::CircuitBreakerLayer;
use tower_fortify::pool::PoolLimitLayer;
use tower_fortify::retry::{RetryLayer, RetryPolicy};
use tower_fortify::ServiceBuilderExt;

let client = ServiceBuilder::new()
    .classify_errors()
    .retries(RetryLayer::builder().policy(RetryPolicy::production()).build()?)
    .circuit_breaker(CircuitBreakerLayer::builder().build()?)
    .pool_limit(PoolLimitLayer::builder(64).block(true).build()?)
    .timeout(Duration::from_secs(10))
    .service_fn(|_req: http::Request<String>| async {
        Ok::<_, std::io::Error>(http::Response::new(String::new()))
    });
# let _ = client;
# Ok::<(), tower_fortify::InvalidConfig>(())
```
"#
)]
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds an [`ErrorClassifyLayer`](crate::classify::ErrorClassifyLayer) with its
    /// defaults: every error becomes a [`Failure`](crate::classify::Failure), with metrics
    /// and tracing.
    ///
    /// ```
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use tower_fortify::classify::{Failure, FailureKind};
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let svc = ServiceBuilder::new()
    ///     .classify_errors()
    ///     .service_fn(|_req: ()| async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) });
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<Failure>().unwrap().kind(), FailureKind::ConnectRefused);
    /// # }
    /// ```
    fn classify_errors(self) -> ServiceBuilder<Stack<crate::classify::ErrorClassifyLayer, L>>;

    /// Adds a [`RetryLayer`](crate::retry::RetryLayer).
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .retries(RetryLayer::builder().policy(RetryPolicy::default().total(Some(5))).build()?)
    ///     .service_fn(|_req: http::Request<String>| async {
    ///         Ok::<_, std::io::Error>(http::Response::new(String::new()))
    ///     });
    /// # let _ = svc;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn retries(
        self,
        layer: crate::retry::RetryLayer,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer, L>>;

    /// Adds a [`CircuitBreakerLayer`](crate::circuit_breaker::CircuitBreakerLayer): one
    /// breaker per host by default (or per key, or one for every request).
    ///
    /// ```
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::new();
    /// let handle = layer.handle();
    /// let svc = ServiceBuilder::new()
    ///     .circuit_breaker(layer)
    ///     .service_fn(|_req: http::Request<()>| async { Ok::<_, std::io::Error>(http::Response::new(())) });
    /// svc.oneshot(http::Request::get("http://a.test/").body(())?).await?;
    /// assert_eq!(handle.len(), 1); // a breaker for the host called
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "circuit-breaker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
    fn circuit_breaker<K, C>(
        self,
        layer: crate::circuit_breaker::CircuitBreakerLayer<K, C>,
    ) -> ServiceBuilder<Stack<crate::circuit_breaker::CircuitBreakerLayer<K, C>, L>>;

    /// Adds a [`GenericCircuitBreakerLayer`](crate::circuit_breaker::GenericCircuitBreakerLayer):
    /// one breaker for every call, for any request type.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, ErrorsOnly};
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .generic_circuit_breaker(
    ///         CircuitBreakerLayer::builder().classifier(ErrorsOnly).build_generic()?,
    ///     )
    ///     .service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
    /// # let _ = svc;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "circuit-breaker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
    fn generic_circuit_breaker<C>(
        self,
        layer: crate::circuit_breaker::GenericCircuitBreakerLayer<C>,
    ) -> ServiceBuilder<Stack<crate::circuit_breaker::GenericCircuitBreakerLayer<C>, L>>;

    /// Adds a [`PoolLimitLayer`](crate::pool::PoolLimitLayer): urllib3's pool semantics
    /// for HTTP services, the permit held until the response body ends.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_fortify::pool::PoolLimitLayer;
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .pool_limit(PoolLimitLayer::builder(10).fail_fast().build()?)
    ///     .service_fn(|_req: http::Request<()>| async {
    ///         Ok::<_, std::io::Error>(http::Response::new(String::new()))
    ///     });
    /// # let _ = svc;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "pool")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
    fn pool_limit<K>(
        self,
        layer: crate::pool::PoolLimitLayer<K>,
    ) -> ServiceBuilder<Stack<crate::pool::PoolLimitLayer<K>, L>>;

    /// Adds a [`GenericPoolLimitLayer`](crate::pool::GenericPoolLimitLayer): the pool limit
    /// for any service, the permit released when the response future completes.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_fortify::pool::PoolLimitLayer;
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .generic_pool_limit(PoolLimitLayer::builder(10).build_generic()?)
    ///     .service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
    /// # let _ = svc;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "pool")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
    fn generic_pool_limit(
        self,
        layer: crate::pool::GenericPoolLimitLayer,
    ) -> ServiceBuilder<Stack<crate::pool::GenericPoolLimitLayer, L>>;

    /// Adds the whole preset client stack (see [`stack`](crate::stack)), with or without
    /// hedging (the layer's [`HedgeMode`](crate::stack::HedgeMode)).
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_fortify::stack::ClientConfig;
    /// use tower_fortify::ServiceBuilderExt;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .client_stack(ClientConfig::default().build()?)
    ///     .service_fn(|_req: http::Request<String>| async {
    ///         Ok::<_, std::io::Error>(http::Response::new(String::new()))
    ///     });
    /// # let _ = svc;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "stack")]
    #[cfg_attr(docsrs, doc(cfg(feature = "stack")))]
    fn client_stack<H: crate::stack::HedgeMode>(
        self,
        layer: crate::stack::ClientStackLayer<H>,
    ) -> ServiceBuilder<Stack<crate::stack::ClientStackLayer<H>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn classify_errors(self) -> ServiceBuilder<Stack<crate::classify::ErrorClassifyLayer, L>> {
        self.layer(crate::classify::ErrorClassifyLayer::new())
    }

    #[cfg(feature = "retry")]
    fn retries(
        self,
        layer: crate::retry::RetryLayer,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker<K, C>(
        self,
        layer: crate::circuit_breaker::CircuitBreakerLayer<K, C>,
    ) -> ServiceBuilder<Stack<crate::circuit_breaker::CircuitBreakerLayer<K, C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "circuit-breaker")]
    fn generic_circuit_breaker<C>(
        self,
        layer: crate::circuit_breaker::GenericCircuitBreakerLayer<C>,
    ) -> ServiceBuilder<Stack<crate::circuit_breaker::GenericCircuitBreakerLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "pool")]
    fn pool_limit<K>(
        self,
        layer: crate::pool::PoolLimitLayer<K>,
    ) -> ServiceBuilder<Stack<crate::pool::PoolLimitLayer<K>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "pool")]
    fn generic_pool_limit(
        self,
        layer: crate::pool::GenericPoolLimitLayer,
    ) -> ServiceBuilder<Stack<crate::pool::GenericPoolLimitLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "stack")]
    fn client_stack<H: crate::stack::HedgeMode>(
        self,
        layer: crate::stack::ClientStackLayer<H>,
    ) -> ServiceBuilder<Stack<crate::stack::ClientStackLayer<H>, L>> {
        self.layer(layer)
    }
}

mod sealed {
    #[allow(unreachable_pub, missing_debug_implementations)]
    pub trait Sealed<T> {}

    impl<T> Sealed<T> for tower::ServiceBuilder<T> {}
}
