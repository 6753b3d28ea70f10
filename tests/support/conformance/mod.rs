//! The differential conformance fuzzer: generated CNI requests run against our binaries and
//! the reference's (`/usr/lib/cni`) in twin sandboxes, compared after normalisation.
//!
//! `tests/conformance.rs` runs it with a small budget in CI; `make conformance` runs a long
//! campaign. Known differences live in `allow.rs`, nowhere else.

pub mod allow;
pub mod compare;
pub mod gen;
pub mod rng;
pub mod side;

use allow::{explain, Ctx};
use compare::{step_diffs, Diff};
use gen::Case;
use side::{CaseObs, SideSpec, StepObs, Worker};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a campaign runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub seed: u64,
    /// Requests (plugin executions on each side) to run at least.
    pub requests: usize,
    /// Replay only this case.
    pub only_case: Option<u64>,
    /// Replay exactly these cases (FUZZ_CASES=1,2,3), e.g. a campaign's findings.
    pub case_list: Option<Vec<u64>>,
    pub ours: PathBuf,
    pub reference: PathBuf,
    /// Full reproducers printed per difference class.
    pub reproducers_per_class: usize,
    /// Twin pairs run in parallel (FUZZ_JOBS).
    pub jobs: usize,
    /// Stop starting cases after this long (FUZZ_MINUTES), whatever the request count.
    pub time_limit: Option<Duration>,
}

impl Settings {
    /// From FUZZ_SEED, FUZZ_REQUESTS, FUZZ_CASE (defaults: seed 1, `requests`).
    pub fn from_env(requests: usize, ours: PathBuf, reference: PathBuf) -> Settings {
        // FUZZ_OURS: a copy of our binaries, so a long campaign survives rebuilds.
        let ours = std::env::var_os("FUZZ_OURS")
            .map(PathBuf::from)
            .unwrap_or(ours);
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Settings {
            seed: num("FUZZ_SEED").unwrap_or(1),
            requests: num("FUZZ_REQUESTS").map(|n| n as usize).unwrap_or(requests),
            only_case: num("FUZZ_CASE"),
            case_list: std::env::var("FUZZ_CASES").ok().map(|v| {
                v.split(|c: char| c == ',' || c.is_whitespace())
                    .filter_map(|x| x.parse().ok())
                    .collect()
            }),
            ours,
            reference,
            reproducers_per_class: 2,
            jobs: num("FUZZ_JOBS").map(|n| n as usize).unwrap_or(2),
            time_limit: num("FUZZ_MINUTES").map(|m| Duration::from_secs(m * 60)),
        }
    }
}

/// One explained or unexplained difference, with what reproduces it.
pub struct Finding {
    pub case: Case,
    pub step: usize,
    pub diffs: Vec<Diff>,
    pub ours: StepObs,
    pub theirs: StepObs,
    /// Allow-list entry names, one per diff (`None` = unexplained).
    pub explained: Vec<Option<&'static str>>,
}

#[derive(Default)]
pub struct Report {
    pub seed: u64,
    pub cases: u64,
    pub requests: usize,
    pub elapsed: Duration,
    /// (plugin, verb, version) → requests.
    pub tried: BTreeMap<(String, String, String), usize>,
    /// difference class → (allow-list entry or "UNEXPLAINED") → count.
    pub by_class: BTreeMap<String, BTreeMap<String, usize>>,
    pub unexplained: Vec<Finding>,
    pub setup_errors: Vec<String>,
}

fn compare_case(case: &Case, ours: &CaseObs, theirs: &CaseObs, report: &mut Report) {
    for (i, step) in case.steps.iter().enumerate() {
        let (Some(o), Some(t)) = (ours.steps.get(i), theirs.steps.get(i)) else {
            break;
        };
        let diffs = step_diffs(o, t);
        if diffs.is_empty() {
            continue;
        }
        let explained: Vec<Option<&'static str>> = diffs
            .iter()
            .map(|d| {
                explain(&Ctx {
                    case,
                    step,
                    diff: d,
                    ours: o,
                    theirs: t,
                })
                .map(|a| a.name)
            })
            .collect();
        for (d, e) in diffs.iter().zip(&explained) {
            *report
                .by_class
                .entry(d.class.clone())
                .or_default()
                .entry(e.unwrap_or("UNEXPLAINED").to_string())
                .or_default() += 1;
        }
        if explained.iter().any(Option::is_none) {
            report.unexplained.push(Finding {
                case: case.clone(),
                step: i,
                diffs,
                ours: o.clone(),
                theirs: t.clone(),
                explained,
            });
        }
        // The sides have diverged: later steps would only echo this difference.
        break;
    }
}

/// Runs the campaign: `jobs` pairs of twin workers, each pair taking the next case index.
pub fn run(settings: &Settings) -> Report {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::mpsc::channel;
    let mut report = Report {
        seed: settings.seed,
        ..Report::default()
    };
    let start = Instant::now();
    let next = AtomicU64::new(settings.only_case.unwrap_or(0));
    let done = AtomicUsize::new(0);
    let (tx, rx) = channel::<(Case, CaseObs, CaseObs)>();
    let jobs = if settings.only_case.is_some() {
        1
    } else {
        settings.jobs.max(1)
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, done) = (&next, &done);
            s.spawn(move || {
                let ours = Worker::spawn(SideSpec {
                    bin_dir: settings.ours.clone(),
                });
                let theirs = Worker::spawn(SideSpec {
                    bin_dir: settings.reference.clone(),
                });
                loop {
                    let listed = settings.case_list.is_some();
                    if !listed
                        && (done.load(Ordering::SeqCst) >= settings.requests
                            || settings.time_limit.is_some_and(|t| start.elapsed() >= t))
                    {
                        break;
                    }
                    let mut index = next.fetch_add(1, Ordering::SeqCst);
                    if let Some(list) = &settings.case_list {
                        match list.get(index as usize) {
                            Some(i) => index = *i,
                            None => break,
                        }
                    }
                    let case = gen::case(settings.seed, index);
                    done.fetch_add(case.steps.len(), Ordering::SeqCst);
                    ours.start(case.clone());
                    theirs.start(case.clone());
                    let (o, t) = (ours.finish(), theirs.finish());
                    if tx.send((case, o, t)).is_err() || settings.only_case.is_some() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Compared as they arrive (a campaign's snapshots would not fit in memory); the
        // findings are sorted by case afterwards, so the report does not depend on timing.
        for (case, o, t) in rx.iter() {
            report.cases += 1;
            if report.cases.is_multiple_of(250) {
                eprintln!(
                    "conformance: {} cases, {} requests, {} unexplained, {:.0} s",
                    report.cases,
                    report.requests,
                    report.unexplained.len(),
                    start.elapsed().as_secs_f64()
                );
            }
            for e in [&o.setup_error, &t.setup_error].into_iter().flatten() {
                report
                    .setup_errors
                    .push(format!("case {}: {e}", case.index));
            }
            for step in &case.steps {
                *report
                    .tried
                    .entry((
                        case.plugin.binary().to_string(),
                        step.verb.clone(),
                        step.version(),
                    ))
                    .or_default() += 1;
            }
            report.requests += case.steps.len();
            let before = report.unexplained.len();
            compare_case(&case, &o, &t, &mut report);
            // A long campaign shows what it finds as it goes.
            if let Some(f) = report.unexplained.get(before) {
                eprintln!("conformance: UNEXPLAINED {}", f.summary());
            }
        }
    });
    report.unexplained.sort_by_key(|f| f.case.index);
    report.elapsed = start.elapsed();
    report
}

fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Finding {
    /// One line: where, which classes, what to replay.
    pub fn summary(&self) -> String {
        let classes: Vec<&str> = self
            .diffs
            .iter()
            .zip(&self.explained)
            .filter(|(_, e)| e.is_none())
            .map(|(d, _)| d.class.as_str())
            .collect();
        format!(
            "{} case {} step {} ({} {}): {}",
            self.case.plugin.binary(),
            self.case.index,
            self.step + 1,
            self.case.steps[self.step].verb,
            self.case.steps[self.step].version(),
            classes.join(", ")
        )
    }

    /// A reproducer: the seed and case, each step's env and stdin up to the differing one, both
    /// outputs, and the differing fields.
    pub fn reproducer(&self, seed: u64) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "--- difference: {} case {} ({}, {}), step {} — replay: FUZZ_SEED={seed} FUZZ_CASE={} cargo test --test conformance -- --nocapture",
            self.case.plugin.binary(),
            self.case.index,
            self.case.shape,
            self.case.steps[self.step].version(),
            self.step + 1,
            self.case.index,
        );
        for c in &self.case.setup {
            let _ = writeln!(s, "  setup (host): {c}");
        }
        for (i, st) in self.case.steps.iter().enumerate().take(self.step + 1) {
            let _ = writeln!(
                s,
                "  step {}: CNI_COMMAND={:?} CNI_CONTAINERID={:?} CNI_IFNAME={:?} CNI_NETNS={:?} CNI_ARGS={:?}{} tags={:?}",
                i + 1,
                st.verb,
                st.container_id,
                st.ifname,
                st.netns,
                st.args,
                if st.with_prev { " +prevResult(own ADD result)" } else { "" },
                st.tags
            );
            let _ = writeln!(s, "    stdin: {}", clip(&st.stdin, 1500));
        }
        for (label, o) in [("ours", &self.ours), ("reference", &self.theirs)] {
            let _ = writeln!(
                s,
                "  {label}: exit {} stdout: {}",
                o.status,
                clip(o.stdout.trim(), 1500)
            );
            if !o.stderr.trim().is_empty() {
                let _ = writeln!(s, "  {label} stderr: {}", clip(o.stderr.trim(), 400));
            }
        }
        for (d, e) in self.diffs.iter().zip(&self.explained) {
            let _ = writeln!(
                s,
                "  [{}] {}\n    ours:      {}\n    reference: {}",
                e.unwrap_or("UNEXPLAINED"),
                d.class,
                clip(&d.ours, 800),
                clip(&d.theirs, 800)
            );
        }
        s
    }
}

impl Report {
    /// The tables: requests by plugin/verb/version, differences by class.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64();
        let _ = writeln!(
            s,
            "conformance: seed {} — {} cases, {} requests per side in {:.1} s ({:.1} ms per request pair)",
            self.seed,
            self.cases,
            self.requests,
            secs,
            if self.requests > 0 { secs * 1000.0 / self.requests as f64 } else { 0.0 }
        );
        let _ = writeln!(s, "\nrequests tried (plugin / verb / cniVersion):");
        let mut by_plugin: BTreeMap<&str, BTreeMap<(&str, &str), usize>> = BTreeMap::new();
        for ((p, v, ver), n) in &self.tried {
            *by_plugin.entry(p).or_default().entry((v, ver)).or_default() += n;
        }
        for (p, m) in &by_plugin {
            let total: usize = m.values().sum();
            let _ = writeln!(s, "  {p:<10} {total:>7}");
            let mut verbs: BTreeMap<&str, usize> = BTreeMap::new();
            let mut versions: BTreeMap<&str, usize> = BTreeMap::new();
            for ((v, ver), n) in m {
                *verbs
                    .entry(if v.is_empty() { "<unset>" } else { v })
                    .or_default() += n;
                *versions
                    .entry(if ver.is_empty() { "<none>" } else { ver })
                    .or_default() += n;
            }
            let list = |m: &BTreeMap<&str, usize>| {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "      verbs: {}", list(&verbs));
            let _ = writeln!(s, "      versions: {}", list(&versions));
        }
        let _ = writeln!(
            s,
            "\ndifferences by class (first diverging step of each case):"
        );
        if self.by_class.is_empty() {
            let _ = writeln!(s, "  none");
        }
        for (class, m) in &self.by_class {
            for (why, n) in m {
                let _ = writeln!(s, "  {class:<40} {n:>6}  {why}");
            }
        }
        let _ = writeln!(s, "\nunexplained: {} case(s)", self.unexplained.len());
        if !self.setup_errors.is_empty() {
            let _ = writeln!(s, "setup errors: {:?}", self.setup_errors);
        }
        s
    }

    /// Reproducers of the unexplained differences, a few per class.
    pub fn reproducers(&self, per_class: usize) -> String {
        let mut shown: BTreeMap<String, usize> = BTreeMap::new();
        let mut s = String::new();
        for f in &self.unexplained {
            let key = f
                .diffs
                .iter()
                .zip(&f.explained)
                .filter(|(_, e)| e.is_none())
                .map(|(d, _)| d.class.clone())
                .collect::<Vec<_>>()
                .join("+");
            let n = shown
                .entry(format!("{}:{key}", f.case.plugin.binary()))
                .or_default();
            if *n < per_class {
                s.push_str(&f.reproducer(self.seed));
            }
            *n += 1;
        }
        s
    }
}
