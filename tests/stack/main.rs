//! The preset client stack (`ClientConfig`) as a whole, over real sockets on 127.0.0.1:
//! the layers it composes working together.

mod hedge;
mod timeout;
