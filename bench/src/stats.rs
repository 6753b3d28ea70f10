//! Percentiles and formatting of duration samples.

use std::time::Duration;

/// Samples of one measured series, in milliseconds.
#[derive(Default, Clone)]
pub struct Series {
    ms: Vec<f64>,
}

impl Series {
    pub fn push(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f64() * 1e3);
    }

    pub fn len(&self) -> usize {
        self.ms.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100); `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, sorted.len()) - 1;
        Some(sorted[idx])
    }

    pub fn p50(&self) -> Option<f64> {
        self.percentile(50.0)
    }
}

/// `12.34`, or `-` when absent.
pub fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// `a / b` with two decimals, or `-` when either side is absent or `b` is zero.
pub fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    ratio(a, b).map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Upper median of integer samples (`None` when empty).
pub fn median(values: &[i64]) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut s = Series::default();
        for i in 1..=100u64 {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.percentile(50.0).map(f64::round), Some(50.0));
        assert_eq!(s.percentile(90.0).map(f64::round), Some(90.0));
        assert_eq!(s.percentile(99.0).map(f64::round), Some(99.0));
        assert_eq!(s.percentile(100.0).map(f64::round), Some(100.0));
        assert_eq!(Series::default().p50(), None);
    }
}
