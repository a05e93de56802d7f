//! Whether the preset hedges, chosen in the types: [`NoHedge`] (the default) or [`Hedged`]
//! ([`ClientConfig::hedge`][config-hedge]). A stack without hedging has the
//! hedge layer's service, future and work nowhere in it, not even a branch.
//!
#![cfg_attr(feature = "hedge", doc = "[config-hedge]: super::ClientConfig::hedge")]
#![cfg_attr(
    not(feature = "hedge"),
    doc = "[config-hedge]: https://docs.rs/tower-fortify/latest/tower_fortify/stack/struct.ClientConfig.html#method.hedge"
)]

use crate::{circuit_breaker::CircuitBreakerHandle, retry::RetryBudget, InvalidConfig};
use std::fmt;

mod sealed {
    pub trait Sealed {}
}

/// Whether the preset stack hedges: [`NoHedge`] (the default) or [`Hedged`][hedged], chosen by
/// [`ClientConfig::hedge`][config-hedge]. The second type parameter of
/// [`ClientConfig`](super::ClientConfig), [`ClientStackLayer`](super::ClientStackLayer) and
/// [`ClientStack`](super::ClientStack) (and of the HTTPS client, feature `client`). Sealed:
/// the crate's two modes are the only ones.
///
/// ```
/// use tower_fortify::stack::{ClientConfig, ClientStackLayer, NoHedge};
///
/// // The default mode, named or not.
/// let layer: ClientStackLayer<NoHedge> = ClientConfig::default().build()?;
/// let _same: ClientStackLayer = layer;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[cfg_attr(feature = "hedge", doc = "[hedged]: Hedged")]
#[cfg_attr(
    not(feature = "hedge"),
    doc = "[hedged]: https://docs.rs/tower-fortify/latest/tower_fortify/stack/struct.Hedged.html"
)]
#[cfg_attr(feature = "hedge", doc = "[config-hedge]: super::ClientConfig::hedge")]
#[cfg_attr(
    not(feature = "hedge"),
    doc = "[config-hedge]: https://docs.rs/tower-fortify/latest/tower_fortify/stack/struct.ClientConfig.html#method.hedge"
)]
pub trait HedgeMode: sealed::Sealed + Clone + fmt::Debug + Send + Sync + 'static {
    /// The hedge layer's settings in a [`ClientConfig`](super::ClientConfig).
    #[doc(hidden)]
    type Config: Clone + fmt::Debug + Send + Sync + 'static;
    /// The built hedge layer in a [`ClientStackLayer`](super::ClientStackLayer).
    #[doc(hidden)]
    type Layer: Clone + fmt::Debug + Send + Sync + 'static;
    /// The hedge layer's service around `S`.
    #[doc(hidden)]
    type Service<S>;
    /// Whether the mode starts second attempts (their delay is a measured percentile, so
    /// an attempt with a hedge has no fixed bound: the retry layer keeps its deadline timer).
    #[doc(hidden)]
    const HEDGES: bool;

    /// Builds the layer with the preset's name, the retry policy's budget and the
    /// breakers' handle.
    #[doc(hidden)]
    fn build(
        config: &Self::Config,
        name: &'static str,
        budget: Option<&RetryBudget>,
        breakers: CircuitBreakerHandle,
    ) -> Result<Self::Layer, InvalidConfig>;

    #[doc(hidden)]
    fn layer<S>(layer: &Self::Layer, inner: S) -> Self::Service<S>;

    #[doc(hidden)]
    fn get_ref<S>(service: &Self::Service<S>) -> &S;

    #[doc(hidden)]
    fn get_mut<S>(service: &mut Self::Service<S>) -> &mut S;

    #[doc(hidden)]
    fn into_inner<S>(service: Self::Service<S>) -> S;
}

/// The preset without hedging (the default): no hedge layer in the stack.
///
/// ```
/// use tower_fortify::stack::{ClientConfig, ClientStackLayer, NoHedge};
///
/// let _layer: ClientStackLayer<NoHedge> = ClientConfig::default().build()?;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHedge;

impl sealed::Sealed for NoHedge {}

impl HedgeMode for NoHedge {
    type Config = ();
    type Layer = ();
    type Service<S> = S;
    const HEDGES: bool = false;

    #[inline]
    fn build(
        _: &(),
        _: &'static str,
        _: Option<&RetryBudget>,
        _: CircuitBreakerHandle,
    ) -> Result<(), InvalidConfig> {
        Ok(())
    }

    #[inline]
    fn layer<S>(_: &(), inner: S) -> S {
        inner
    }

    #[inline]
    fn get_ref<S>(service: &S) -> &S {
        service
    }

    #[inline]
    fn get_mut<S>(service: &mut S) -> &mut S {
        service
    }

    #[inline]
    fn into_inner<S>(service: S) -> S {
        service
    }
}

/// The preset with hedging ([`ClientConfig::hedge`](super::ClientConfig::hedge)): a
/// [`HedgeLayer`](crate::hedge::HedgeLayer) between the retry layer and the per-host
/// breaker. Feature `hedge`.
///
/// ```
/// use tower_fortify::hedge::HedgeLayer;
/// use tower_fortify::stack::{ClientConfig, ClientStackLayer, Hedged};
///
/// let _layer: ClientStackLayer<Hedged> = ClientConfig::default()
///     .hedge(HedgeLayer::builder())
///     .build()?;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[cfg(feature = "hedge")]
#[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Hedged;

#[cfg(feature = "hedge")]
impl sealed::Sealed for Hedged {}

#[cfg(feature = "hedge")]
impl HedgeMode for Hedged {
    type Config = crate::hedge::HedgeBuilder;
    type Layer = crate::hedge::HedgeLayer;
    type Service<S> = crate::hedge::Hedge<S>;
    const HEDGES: bool = true;

    fn build(
        config: &Self::Config,
        name: &'static str,
        budget: Option<&RetryBudget>,
        breakers: CircuitBreakerHandle,
    ) -> Result<Self::Layer, InvalidConfig> {
        let mut builder = config.clone().name(name).breaker(breakers);
        if let Some(budget) = budget {
            builder = builder.budget(budget.clone());
        }
        builder.build()
    }

    #[inline]
    fn layer<S>(layer: &Self::Layer, inner: S) -> Self::Service<S> {
        tower_layer::Layer::layer(layer, inner)
    }

    #[inline]
    fn get_ref<S>(service: &Self::Service<S>) -> &S {
        service.get_ref()
    }

    #[inline]
    fn get_mut<S>(service: &mut Self::Service<S>) -> &mut S {
        service.get_mut()
    }

    #[inline]
    fn into_inner<S>(service: Self::Service<S>) -> S {
        service.into_inner()
    }
}
