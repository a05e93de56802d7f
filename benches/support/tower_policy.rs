//! tower retry policies that do our retry layer's success-path work, for the benches that
//! set tower's `Retry` beside ours (`#[path = "support/tower_policy.rs"] mod tower_policy;`).

use http::Request;
use std::{future::Ready, sync::Arc, time::Duration};
use tower::retry::{
    budget::{Budget, TpsBudget},
    Policy,
};

/// Copies every field of the request (method, URI, version, headers, extensions, body) and
/// never retries: the success path of a real policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CopyRequest;

impl<B: Clone, Res, E> Policy<Request<B>, Res, E> for CopyRequest {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Request<B>, _: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

/// `CopyRequest` with tower's own retry budget (`TpsBudget`, shared by every clone through
/// an `Arc`, the way a tower policy holds one), depositing once per successful call: the
/// same work as `RetryPolicy::production()`'s success path, whose budget has the same
/// settings (10 s window, 10 retries/s reserve, 20% of requests).
#[derive(Clone, Debug)]
pub(crate) struct CopyRequestWithBudget {
    budget: Arc<TpsBudget>,
}

impl CopyRequestWithBudget {
    pub(crate) fn new() -> Self {
        CopyRequestWithBudget {
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        }
    }
}

impl<B: Clone, Res, E> Policy<Request<B>, Res, E> for CopyRequestWithBudget {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Request<B>, result: &mut Result<Res, E>) -> Option<Self::Future> {
        if result.is_ok() {
            self.budget.deposit();
        }
        None
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        <CopyRequest as Policy<Request<B>, Res, E>>::clone_request(&mut CopyRequest, req)
    }
}
