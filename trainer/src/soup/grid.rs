//! Weightings of several ingredients (adapters for a soup, rewards for a MORL sweep), parsed
//! from the command line.
//!
//! A [`Mix`] is one weight per ingredient. The forms accepted by [`parse`]:
//! - `A:B:S`: λ from A to B in steps of S, both ends included (`0:1:0.1` is 11 values);
//! - `a,b,c`: those λs;
//!
//!   with two ingredients a λ means the weights `(1 − λ, λ)`: λ = 0 is the first
//!   ingredient alone, λ = 1 the second (Rewarded Soups' θ_λ = (1 − λ)·θ_A + λ·θ_B);
//! - `uniform`: every ingredient 1/k (the seed's soup of more than two adapters);
//! - `simplex:S`: every weight vector whose entries are multiples of S and sum to 1;
//! - `w1/w2/w3,...`: explicit weight vectors (each summing to 1).
//!
//! λs outside [0, 1] are accepted (extrapolation is a defined mix); explicit vectors must
//! sum to 1 within 1e-6, so a typo is not read as a different model.

/// One weight per ingredient.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// The weights, in the order the ingredients were given.
    pub weights: Vec<f64>,
}

impl Mix {
    /// λ of a two-ingredient mix (the second one's weight); `None` for more ingredients.
    pub fn lambda(&self) -> Option<f64> {
        (self.weights.len() == 2).then(|| self.weights[1])
    }

    /// A file and system name: `lambda-0.3` for two ingredients, `w-0.2-0.3-0.5` for more.
    pub fn label(&self) -> String {
        match self.lambda() {
            Some(l) => format!("lambda-{}", short(l)),
            None => {
                let parts: Vec<String> = self.weights.iter().map(|w| short(*w)).collect();
                format!("w-{}", parts.join("-"))
            }
        }
    }
}

/// A weight as short text: at most six decimals, no trailing zeros (`0.3`, `1`, `0.333333`).
pub fn short(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Rounds away the binary noise of `a + i·s` (0.30000000000000004 → 0.3).
fn tidy(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// Parses `spec` for `k` ingredients (`k ≥ 2`); the error says which form was expected.
pub fn parse(spec: &str, k: usize) -> Result<Vec<Mix>, String> {
    let spec = spec.trim();
    let number = |s: &str| -> Result<f64, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{s}` is not a number"))
    };
    let pair = |l: f64| Mix {
        weights: vec![tidy(1.0 - l), l],
    };
    if spec == "uniform" {
        return Ok(vec![Mix {
            weights: vec![1.0 / k as f64; k],
        }]);
    }
    if let Some(step) = spec.strip_prefix("simplex:") {
        let step = number(step)?;
        let n = (1.0 / step).round();
        if !(step > 0.0 && n >= 1.0 && (n * step - 1.0).abs() < 1e-9) {
            return Err(format!(
                "simplex:{step}: the step must divide 1 (0.5, 0.25, 0.1, ...)"
            ));
        }
        let mut out = Vec::new();
        simplex(k, n as usize, &mut Vec::new(), &mut out);
        return Ok(out
            .into_iter()
            .map(|c| Mix {
                weights: c.iter().map(|&c| tidy(c as f64 / n)).collect(),
            })
            .collect());
    }
    if spec.contains('/') {
        return spec
            .split(',')
            .map(|v| {
                let weights: Vec<f64> = v.split('/').map(number).collect::<Result<_, _>>()?;
                if weights.len() != k {
                    return Err(format!(
                        "`{v}` has {} weights for {k} ingredients",
                        weights.len()
                    ));
                }
                let sum: f64 = weights.iter().sum();
                if (sum - 1.0).abs() > 1e-6 {
                    return Err(format!("`{v}` sums to {sum}, not 1"));
                }
                Ok(Mix { weights })
            })
            .collect();
    }
    let lambdas: Vec<f64> = match spec.split(':').collect::<Vec<_>>()[..] {
        [a, b, s] => {
            let (a, b, s) = (number(a)?, number(b)?, number(s)?);
            if !(s > 0.0 && b >= a) {
                return Err(format!(
                    "`{spec}`: expected START:END:STEP with END ≥ START and STEP > 0"
                ));
            }
            let n = ((b - a) / s + 1e-9).floor() as usize;
            if n > 10_000 {
                return Err(format!("`{spec}` gives {} values", n + 1));
            }
            (0..=n).map(|i| tidy(a + i as f64 * s)).collect()
        }
        [_] => spec.split(',').map(number).collect::<Result<_, _>>()?,
        _ => return Err(format!("`{spec}`: expected START:END:STEP")),
    };
    if k != 2 {
        return Err(format!(
            "`{spec}` gives λs, which mix two ingredients; for {k} give `uniform`, \
             `simplex:STEP` or weight vectors `w1/w2/...`"
        ));
    }
    Ok(lambdas.into_iter().map(pair).collect())
}

/// Every way of writing `n` as an ordered sum of `k` non-negative integers, in
/// lexicographic order.
fn simplex(k: usize, n: usize, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if prefix.len() + 1 == k {
        let used: usize = prefix.iter().sum();
        let mut v = prefix.clone();
        v.push(n - used);
        out.push(v);
        return;
    }
    let used: usize = prefix.iter().sum();
    for c in 0..=(n - used) {
        prefix.push(c);
        simplex(k, n, prefix, out);
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(spec: &str, k: usize) -> Vec<Vec<f64>> {
        parse(spec, k)
            .expect("parses")
            .into_iter()
            .map(|m| m.weights)
            .collect()
    }

    #[test]
    fn a_range_includes_both_ends_without_binary_noise() {
        let mixes = parse("0:1:0.1", 2).expect("parses");
        assert_eq!(mixes.len(), 11);
        assert_eq!(mixes[3].weights, vec![0.7, 0.3]);
        assert_eq!(mixes[3].label(), "lambda-0.3");
        assert_eq!(mixes[10].weights, vec![0.0, 1.0]);
        assert_eq!(weights("0:1:0.25", 2).len(), 5);
        assert_eq!(weights("0.5", 2), vec![vec![0.5, 0.5]]);
        assert_eq!(weights("0,1.25", 2)[1], vec![-0.25, 1.25]);
    }

    #[test]
    fn more_ingredients_take_uniform_simplex_or_vectors() {
        assert_eq!(weights("uniform", 3), vec![vec![1.0 / 3.0; 3]]);
        let grid = weights("simplex:0.5", 3);
        assert_eq!(grid.len(), 6, "C(2+2, 2) points");
        assert!(
            grid.iter()
                .all(|w| (w.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
        assert_eq!(grid[0], vec![0.0, 0.0, 1.0]);
        assert_eq!(
            parse("0.2/0.3/0.5", 3).expect("parses")[0].label(),
            "w-0.2-0.3-0.5"
        );
    }

    #[test]
    fn malformed_specs_say_what_was_expected() {
        let err = |s: &str, k| parse(s, k).expect_err(s);
        assert!(err("1:0:0.1", 2).contains("END ≥ START"));
        assert!(err("0:1:x", 2).contains("not a number"));
        assert!(err("0.2/0.2/0.2", 3).contains("sums to"));
        assert!(err("0.5/0.5", 3).contains("2 weights for 3"));
        assert!(err("0:1:0.5", 3).contains("simplex"));
        assert!(err("simplex:0.3", 3).contains("divide 1"));
        assert!(err("0:1:0.5:2", 2).contains("START:END:STEP"));
    }
}
