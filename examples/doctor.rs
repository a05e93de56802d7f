//! `doctor`: why does a host fail? DNS, TCP, TLS (with the certificate chain) and HTTP, one
//! stage at a time, with the failure kind this crate gives it and what to fix.
//!
//! ```text
//! cargo run --example doctor -- https://host[:port]/path \
//!     [--ca FILE] [--resolve host:port:addr]... [--json]
//! ```
//!
//! Exits 0 when every stage passed, 1 when one failed, 2 on bad arguments. Colour only on
//! a terminal (and never with `NO_COLOR` set).
//!
//! With no arguments it diagnoses two servers it starts on 127.0.0.1 with certificates
//! from its own test CA: a healthy one, and one whose certificate expired.

use fortify_test_support::pki;
use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};
use tower_fortify::diagnose::{diagnose, Options, Report};

const USAGE: &str =
    "usage: doctor https://host[:port]/path [--ca FILE] [--resolve host:port:addr]... [--json]";

fn print(report: &Report, json: bool) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`doctor ... | head`) is not an error worth a panic.
    let _ = if json {
        writeln!(out, "{}", report.to_json())
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        writeln!(out, "{}", report.table(color))
    };
}

/// The demo: a healthy server and an expired certificate, both on 127.0.0.1.
async fn demo(json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let root = pki::ca("Doctor Demo Root CA", None);
    for (case, note) in [
        (pki::Case::Valid, "a healthy server"),
        (pki::Case::Expired, "a server whose certificate expired"),
    ] {
        let addr = pki::tls_server(&pki::served(case, &root), pki::OK).await;
        let options = Options::new()
            .webpki_roots(false)
            .root_certificate(root.der().clone())
            .resolve(&format!("localhost:{}:127.0.0.1", addr.port()))?;
        let url = format!("https://localhost:{}/health", addr.port());
        if !json {
            println!("# {note} (the demo CA trusted, localhost resolved by an override)\n");
        }
        print(&diagnose(&url, &options).await?, json);
        if !json {
            println!();
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut url = None;
    let mut json = false;
    let mut options = Options::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let result = match arg.as_str() {
            "--json" => {
                json = true;
                Ok(())
            }
            "--ca" => match args.next().map(std::fs::read) {
                Some(Ok(pem)) => options
                    .clone()
                    .ca_pem(pem)
                    .map(|o| options = o)
                    .map_err(|e| e.to_string()),
                Some(Err(e)) => Err(format!("--ca: {e}")),
                None => Err("--ca needs a file".to_owned()),
            },
            "--resolve" => match args.next() {
                Some(spec) => options
                    .clone()
                    .resolve(&spec)
                    .map(|o| options = o)
                    .map_err(|e| e.to_string()),
                None => Err("--resolve needs host:port:addr".to_owned()),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if url.is_none() && !arg.starts_with('-') => {
                url = Some(arg);
                Ok(())
            }
            _ => Err(format!("unexpected argument {arg:?}")),
        };
        if let Err(message) = result {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    }

    let Some(url) = url else {
        return match demo(json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e}");
                ExitCode::FAILURE
            }
        };
    };
    match diagnose(&url, &options).await {
        Ok(report) => {
            print(&report, json);
            if report.verdict.stage.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
