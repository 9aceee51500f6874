//! Classification metrics: accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix
//! (scikit-learn's definitions; a class with no predictions or no examples scores 0 where undefined).

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ClassScore {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassScore>,
    /// confusion[true][predicted].
    pub confusion: Vec<Vec<usize>>,
}

pub fn report(labels: &[String], truth: &[usize], pred: &[usize]) -> Report {
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        confusion[t][p] += 1;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassScore> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted: usize = (0..k).map(|t| confusion[t][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassScore { label: labels[c].clone(), precision, recall, f1, support }
        })
        .collect();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    Report {
        accuracy: ratio(correct, truth.len()),
        macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / k.max(1) as f64,
        per_class,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scikit_learn() {
        // sklearn: y_true [0,0,1,1,2,2,2], y_pred [0,1,1,1,2,0,2]: accuracy 5/7; per-class F1 0.5, 0.8,
        // 0.8 → macro 0.7.
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let r = report(&labels, &[0, 0, 1, 1, 2, 2, 2], &[0, 1, 1, 1, 2, 0, 2]);
        assert!((r.accuracy - 5.0 / 7.0).abs() < 1e-12);
        let f1: Vec<f64> = r.per_class.iter().map(|c| c.f1).collect();
        for (g, w) in f1.iter().zip([0.5, 0.8, 0.8]) {
            assert!((g - w).abs() < 1e-12, "{f1:?}");
        }
        assert!((r.macro_f1 - 0.7).abs() < 1e-12);
        assert_eq!(r.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 2]]);
    }
}
