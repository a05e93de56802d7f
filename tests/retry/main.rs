mod conformance;
mod contract;
mod real_server;
mod rules;
