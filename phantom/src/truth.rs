//! The true PROMISE miTNM stage of a phantom, from its lesions' staging roles (DESIGN S8).
//!
//! This is the one place the rule is written for ground truth; the staging module derives the
//! same categories from suspicious findings, and evaluation compares the two.

use serde::{Deserialize, Serialize};

use uptake::classes::Role;

/// True miT/miN/miM of a study, as the strings the report uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrueStage {
    /// "T0" or "T+".
    pub mi_t: String,
    /// "N0", "N1" or "N2".
    pub mi_n: String,
    /// The highest M category present: "M0", "M1a", "M1b" or "M1c".
    pub mi_m: String,
    /// Every M category present, in the order M1a, M1b, M1c (empty for M0).
    pub m_categories: Vec<String>,
    /// Bone pattern when M1b is present: "u" (1 lesion), "o" (2–3), "d" (≥ 4) or "dmi"
    /// (diffuse marrow involvement).
    pub bone_pattern: Option<String>,
}

impl TrueStage {
    /// The M code of the staging CSV: the highest category, with the bone pattern after a slash
    /// when it is M1b ("M1b/o").
    pub fn m_code(&self) -> String {
        match (&self.mi_m[..], &self.bone_pattern) {
            ("M1b", Some(pattern)) => format!("M1b/{pattern}"),
            (m, _) => m.to_string(),
        }
    }
}

/// Stages a set of lesion roles. `diffuse_marrow` marks diffuse marrow involvement, which is
/// M1b "dmi" whatever the count of focal bone lesions.
pub fn stage(roles: &[Role], diffuse_marrow: bool) -> TrueStage {
    let count = |r: Role| roles.iter().filter(|&&x| x == r).count();
    let n = count(Role::N);
    let bone = count(Role::M1b);
    let bone_pattern = if diffuse_marrow {
        Some("dmi")
    } else {
        match bone {
            0 => None,
            1 => Some("u"),
            2..=3 => Some("o"),
            _ => Some("d"),
        }
    };
    let mut m_categories = Vec::new();
    if count(Role::M1a) > 0 {
        m_categories.push("M1a".to_string());
    }
    if bone_pattern.is_some() {
        m_categories.push("M1b".to_string());
    }
    if count(Role::M1c) > 0 {
        m_categories.push("M1c".to_string());
    }
    TrueStage {
        mi_t: if count(Role::T) > 0 { "T+" } else { "T0" }.to_string(),
        mi_n: match n {
            0 => "N0",
            1 => "N1",
            _ => "N2",
        }
        .to_string(),
        mi_m: m_categories
            .last()
            .cloned()
            .unwrap_or_else(|| "M0".to_string()),
        m_categories,
        bone_pattern: bone_pattern.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    /// (roles, diffuse marrow, miT, miN, miM, M categories, bone pattern)
    type Case<'a> = (
        &'a [Role],
        bool,
        &'a str,
        &'a str,
        &'a str,
        &'a [&'a str],
        Option<&'a str>,
    );

    #[test]
    fn staging_table() {
        let cases: &[Case] = &[
            (&[], false, "T0", "N0", "M0", &[], None),
            (&[T], false, "T+", "N0", "M0", &[], None),
            (&[T, T], false, "T+", "N0", "M0", &[], None),
            (&[N], false, "T0", "N1", "M0", &[], None),
            (&[N, N], false, "T0", "N2", "M0", &[], None),
            (&[N, N, N, N, N], false, "T0", "N2", "M0", &[], None),
            (&[M1a], false, "T0", "N0", "M1a", &["M1a"], None),
            (&[M1b], false, "T0", "N0", "M1b", &["M1b"], Some("u")),
            (&[M1b, M1b], false, "T0", "N0", "M1b", &["M1b"], Some("o")),
            (
                &[M1b, M1b, M1b],
                false,
                "T0",
                "N0",
                "M1b",
                &["M1b"],
                Some("o"),
            ),
            (&[M1b; 4], false, "T0", "N0", "M1b", &["M1b"], Some("d")),
            (&[M1b; 30], false, "T0", "N0", "M1b", &["M1b"], Some("d")),
            (&[], true, "T0", "N0", "M1b", &["M1b"], Some("dmi")),
            (&[M1b, M1b], true, "T0", "N0", "M1b", &["M1b"], Some("dmi")),
            (&[M1c], false, "T0", "N0", "M1c", &["M1c"], None),
            (&[M1a, M1c], false, "T0", "N0", "M1c", &["M1a", "M1c"], None),
            (
                &[M1c, M1b, M1a],
                false,
                "T0",
                "N0",
                "M1c",
                &["M1a", "M1b", "M1c"],
                Some("u"),
            ),
            (
                &[M1a, M1b, M1b, M1b, M1b],
                false,
                "T0",
                "N0",
                "M1b",
                &["M1a", "M1b"],
                Some("d"),
            ),
            (&[T, N, M1a], false, "T+", "N1", "M1a", &["M1a"], None),
            (
                &[T, N, N, M1b, M1c],
                false,
                "T+",
                "N2",
                "M1c",
                &["M1b", "M1c"],
                Some("u"),
            ),
        ];
        for (roles, diffuse, t, n, m, cats, pattern) in cases {
            let s = stage(roles, *diffuse);
            assert_eq!(s.mi_t, *t, "{roles:?}");
            assert_eq!(s.mi_n, *n, "{roles:?}");
            assert_eq!(s.mi_m, *m, "{roles:?}");
            assert_eq!(s.m_categories, cats.to_vec(), "{roles:?}");
            assert_eq!(s.bone_pattern.as_deref(), *pattern, "{roles:?}");
        }
    }

    #[test]
    fn m_code_carries_the_bone_pattern_of_m1b_only() {
        let cases: &[(&[Role], bool, &str)] = &[
            (&[], false, "M0"),
            (&[M1a], false, "M1a"),
            (&[M1b, M1b], false, "M1b/o"),
            (&[], true, "M1b/dmi"),
            (&[M1b, M1c], false, "M1c"),
        ];
        for (roles, diffuse, code) in cases {
            assert_eq!(stage(roles, *diffuse).m_code(), *code, "{roles:?}");
        }
    }
}
