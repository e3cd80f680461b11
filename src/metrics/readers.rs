//! What a refresher tells about the readers it serves (issue #20): requests
//! answered per org and how (`sfx_reader_requests_total{org,result}`), and how
//! long readers waited for the answer (`sfx_reader_request_wait_seconds`: from
//! the request's time in the store, by the server's clock, to the answer, by
//! this machine's clock — the same clock when both run on one host).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts};

/// How a reader's request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A refresh stored a new token.
    Refreshed,
    /// The stored token already satisfied it: no refresh.
    Fresh,
    /// The refresh failed; the reader was told.
    Failed,
}

impl Served {
    const ALL: [Served; 3] = [Served::Refreshed, Served::Fresh, Served::Failed];
    fn label(self) -> &'static str {
        match self {
            Served::Refreshed => "refreshed",
            Served::Fresh => "fresh",
            Served::Failed => "failed",
        }
    }
}

/// Wait buckets, in seconds: a served request takes one store round trip and
/// at most one refresh (normally well under 2 s); the tail covers the 60 s a
/// reader waits by default.
const WAIT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

pub(super) struct Readers {
    served: Mutex<BTreeMap<String, [u64; 3]>>,
    wait: Histogram,
}

impl Readers {
    pub(super) fn new() -> Readers {
        Readers {
            served: Mutex::new(BTreeMap::new()),
            wait: Histogram::with_opts(
                HistogramOpts::new(
                    "sfx_reader_request_wait_seconds",
                    "Time from a reader's request for a fresher token to this refresher's answer, in seconds.",
                )
                .buckets(WAIT_BUCKETS.to_vec()),
            )
            .expect("fixed, valid histogram options"),
        }
    }

    pub(super) fn served(&self, org: &str, result: Served, waited: Duration) {
        let mut m = self.served.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(org.to_string()).or_default()[result as usize] += 1;
        self.wait.observe(waited.as_secs_f64());
    }

    /// The counter (only orgs that readers asked about) as text, the histogram
    /// as a family for the crate's encoder.
    pub(super) fn encode(&self, text: &mut String, fams: &mut Vec<MetricFamily>) {
        let served: Vec<(String, [u64; 3])> = self
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if !served.is_empty() {
            super::header(
                text,
                "sfx_reader_requests_total",
                "Readers' requests for a fresher token this refresher answered, by org and result (refreshed, fresh = the stored token already did, failed).",
                "counter",
            );
            for (org, counts) in &served {
                for r in Served::ALL {
                    super::line(
                        text,
                        "sfx_reader_requests_total",
                        &[("org", org.as_str()), ("result", r.label())],
                        counts[r as usize] as i64,
                    );
                }
            }
        }
        fams.extend(prometheus::core::Collector::collect(&self.wait));
    }
}
