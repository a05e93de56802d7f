//! The command line: the demo's options, their defaults, `--help` and the parser.

use fortify_test_support::flaky::Outage;

#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) requests: usize,
    pub(crate) concurrency: usize,
    pub(crate) rate: f64,
    pub(crate) plain: bool,
    pub(crate) refuse: f64,
    pub(crate) reset: f64,
    pub(crate) tls_stall: f64,
    pub(crate) tls_reset: f64,
    pub(crate) unavailable: f64,
    pub(crate) slow: f64,
    pub(crate) unkeyed: f64,
    pub(crate) outage: f64,
    pub(crate) outage_kind: Outage,
    pub(crate) seed: u64,
    pub(crate) diagnose: bool,
    /// Length of the overload phase's capacity drop (0: no overload phase).
    pub(crate) overload: f64,
    /// The overload phase only.
    pub(crate) overload_only: bool,
    /// The fortified client of the main run hedges.
    pub(crate) hedge: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            requests: 10_000,
            concurrency: 48,
            rate: 1000.0,
            plain: false,
            refuse: 0.02,
            reset: 0.01,
            tls_stall: 0.01,
            tls_reset: 0.01,
            unavailable: 0.01,
            slow: 0.01,
            unkeyed: 0.002,
            outage: 1.5,
            outage_kind: Outage::Unavailable,
            seed: 42,
            diagnose: false,
            overload: 3.0,
            overload_only: false,
            hedge: false,
        }
    }
}

pub(crate) const USAGE: &str = "\
usage: cargo run --release --example demo -- [flags]

  --requests N        logical requests per client (default 10000)
  --concurrency N     requests in flight at most (default 48)
  --rate N            requests started per second, 0 = unpaced (default 1000)
  --plain             plain HTTP without keep-alive instead of HTTPS
  --refuse R          share of new connections refused (default 0.02)
  --reset R           share of requests reset after they were read (default 0.01; of
                      connections with --plain)
  --tls-stall R       share of TLS handshakes that stall (default 0.01)
  --tls-reset R       share of TLS handshakes reset by the server (default 0.01)
  --unavailable R     share of requests answered 503 + Retry-After: 1 (default 0.01)
  --slow R            share of requests answered 1 s late (default 0.01)
  --unkeyed R         share of the workload that is POST without idempotency key (default 0.002;
                      20% are keyed POSTs, the rest GETs)
  --outage SECONDS    outage length, starting 40% into the run; 0 disables (default 1.5)
  --outage-kind K     unavailable (every request 503) or refused (every connect refused)
  --seed N            seed of the faults and of the workload mix (default 42)
  --overload SECONDS  the overload phase's capacity drop; 0 skips the phase (default 3)
  --overload-only     the overload phase only
  --hedge             the main run's fortified client hedges (HTTPS only; see the docs)
  --diagnose          print the diagnosis table (the doctor's probe against each kind of failure)
  --help              this text";

pub(crate) fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--diagnose" => {
                options.diagnose = true;
                continue;
            }
            "--plain" => {
                options.plain = true;
                continue;
            }
            "--overload-only" => {
                options.overload_only = true;
                continue;
            }
            "--hedge" => {
                options.hedge = true;
                continue;
            }
            _ => {}
        }
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--requests" => options.requests = parse_count(&flag, &value()?, 1)?,
            "--concurrency" => options.concurrency = parse_count(&flag, &value()?, 1)?,
            "--rate" => options.rate = parse_number(&flag, &value()?, 0.0, 1e6)?,
            "--refuse" => options.refuse = parse_number(&flag, &value()?, 0.0, 1.0)?,
            "--reset" => options.reset = parse_number(&flag, &value()?, 0.0, 1.0)?,
            "--tls-stall" => options.tls_stall = parse_number(&flag, &value()?, 0.0, 1.0)?,
            "--tls-reset" => options.tls_reset = parse_number(&flag, &value()?, 0.0, 1.0)?,
            "--unavailable" => options.unavailable = parse_number(&flag, &value()?, 0.0, 1.0)?,
            "--slow" => options.slow = parse_number(&flag, &value()?, 0.0, 1.0)?,
            "--unkeyed" => options.unkeyed = parse_number(&flag, &value()?, 0.0, 0.8)?,
            "--outage" => options.outage = parse_number(&flag, &value()?, 0.0, 3600.0)?,
            "--overload" => options.overload = parse_number(&flag, &value()?, 0.0, 3600.0)?,
            "--outage-kind" => {
                options.outage_kind = match value()?.as_str() {
                    "unavailable" => Outage::Unavailable,
                    "refused" => Outage::Refused,
                    other => {
                        return Err(format!(
                            "--outage-kind must be `unavailable` or `refused`, not `{other}`"
                        ))
                    }
                }
            }
            "--seed" => {
                let v = value()?;
                options.seed = v
                    .parse()
                    .map_err(|_| format!("--seed needs an unsigned integer, not `{v}`"))?;
            }
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    if options.refuse + options.reset > 1.0 {
        return Err("--refuse plus --reset cannot exceed 1".into());
    }
    if options.overload_only && options.overload == 0.0 {
        return Err("--overload-only needs an --overload longer than 0".into());
    }
    if options.tls_stall + options.tls_reset > 1.0 {
        return Err("--tls-stall plus --tls-reset cannot exceed 1".into());
    }
    Ok(Some(options))
}

fn parse_count(flag: &str, v: &str, min: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= min && n <= 10_000_000 => Ok(n),
        _ => Err(format!(
            "{flag} needs an integer from {min} to 10000000, not `{v}`"
        )),
    }
}

fn parse_number(flag: &str, v: &str, min: f64, max: f64) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if (min..=max).contains(&x) => Ok(x),
        _ => Err(format!(
            "{flag} needs a number from {min} to {max}, not `{v}`"
        )),
    }
}
