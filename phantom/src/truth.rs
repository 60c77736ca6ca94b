//! The true PROMISE miTNM stage of a phantom, from its lesions' staging roles (DESIGN S8).
//!
//! This is the one place the rule is written for ground truth; the staging module derives the
//! same categories from suspicious findings, and evaluation compares the two.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use uptake::classes::Role;
use uptake::staging::{BonePattern, MStage, NStage, ParseStageError, TStage};

/// True miT/miN/miM of a study, in the categories of the plugin's staging (`uptake::staging`);
/// study files write each as the code the report uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrueStage {
    /// T0 or T+.
    pub mi_t: TStage,
    /// N0, N1 or N2.
    pub mi_n: NStage,
    /// The highest M category present: M0, M1a, M1b or M1c.
    pub mi_m: MStage,
    /// Every M category present, in the order M1a, M1b, M1c (empty for M0).
    pub m_categories: Vec<MStage>,
    /// Bone pattern, present exactly when M1b is.
    pub bone_pattern: Option<TrueBonePattern>,
}

/// The bone pattern of a true M1b: the plugin's pattern of focal lesions, or diffuse marrow
/// involvement, which the truth names in its place. Written "u", "o", "d" or "dmi".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum TrueBonePattern {
    /// Focal bone lesions: 1 (u), 2–3 (o) or ≥ 4 (d).
    Focal(BonePattern),
    /// Diffuse marrow involvement (dmi), whatever the count of focal lesions.
    DiffuseMarrow,
}

impl TrueBonePattern {
    /// "u", "o", "d" or "dmi".
    pub fn code(self) -> &'static str {
        match self {
            TrueBonePattern::Focal(pattern) => pattern.code(),
            TrueBonePattern::DiffuseMarrow => "dmi",
        }
    }
}

impl fmt::Display for TrueBonePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl FromStr for TrueBonePattern {
    type Err = ParseStageError;

    /// A focal pattern as the plugin reads it, or "dmi" in any case.
    fn from_str(text: &str) -> Result<Self, ParseStageError> {
        if text.trim().eq_ignore_ascii_case("dmi") {
            Ok(TrueBonePattern::DiffuseMarrow)
        } else {
            text.parse().map(TrueBonePattern::Focal)
        }
    }
}

impl From<TrueBonePattern> for &'static str {
    fn from(pattern: TrueBonePattern) -> Self {
        pattern.code()
    }
}

impl TryFrom<String> for TrueBonePattern {
    type Error = ParseStageError;

    fn try_from(text: String) -> Result<Self, ParseStageError> {
        text.parse()
    }
}

impl TrueStage {
    /// The M code of the staging CSV: the highest category, with the bone pattern after a slash
    /// when it is M1b ("M1b/o").
    pub fn m_code(&self) -> String {
        match (self.mi_m, self.bone_pattern) {
            (MStage::M1b, Some(pattern)) => format!("M1b/{pattern}"),
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
        Some(TrueBonePattern::DiffuseMarrow)
    } else {
        match bone {
            0 => None,
            1 => Some(TrueBonePattern::Focal(BonePattern::Unifocal)),
            2..=3 => Some(TrueBonePattern::Focal(BonePattern::Oligometastatic)),
            _ => Some(TrueBonePattern::Focal(BonePattern::Disseminated)),
        }
    };
    let mut m_categories = Vec::new();
    if count(Role::M1a) > 0 {
        m_categories.push(MStage::M1a);
    }
    if bone_pattern.is_some() {
        m_categories.push(MStage::M1b);
    }
    if count(Role::M1c) > 0 {
        m_categories.push(MStage::M1c);
    }
    TrueStage {
        mi_t: if count(Role::T) > 0 {
            TStage::TPlus
        } else {
            TStage::T0
        },
        mi_n: match n {
            0 => NStage::N0,
            1 => NStage::N1,
            _ => NStage::N2,
        },
        mi_m: m_categories.last().copied().unwrap_or(MStage::M0),
        m_categories,
        bone_pattern,
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
            let categories: Vec<&str> = s.m_categories.iter().map(|m| m.code()).collect();
            assert_eq!(s.mi_t.code(), *t, "{roles:?}");
            assert_eq!(s.mi_n.code(), *n, "{roles:?}");
            assert_eq!(s.mi_m.code(), *m, "{roles:?}");
            assert_eq!(categories, cats.to_vec(), "{roles:?}");
            assert_eq!(s.bone_pattern.map(|p| p.code()), *pattern, "{roles:?}");
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

    /// Study files keep the codes they always had, and read back as the same stage.
    #[test]
    fn json_writes_the_codes_and_reads_them_back() {
        let cases: &[(&[Role], bool, &str)] = &[
            (
                &[],
                false,
                r#"{"mi_t":"T0","mi_n":"N0","mi_m":"M0","m_categories":[],"bone_pattern":null}"#,
            ),
            (
                &[T, N, M1a, M1b, M1b],
                false,
                r#"{"mi_t":"T+","mi_n":"N1","mi_m":"M1b","m_categories":["M1a","M1b"],"bone_pattern":"o"}"#,
            ),
            (
                &[N, N, M1c],
                true,
                r#"{"mi_t":"T0","mi_n":"N2","mi_m":"M1c","m_categories":["M1b","M1c"],"bone_pattern":"dmi"}"#,
            ),
        ];
        for (roles, diffuse, json) in cases {
            let s = stage(roles, *diffuse);
            assert_eq!(serde_json::to_string(&s).unwrap(), *json);
            assert_eq!(serde_json::from_str::<TrueStage>(json).unwrap(), s);
        }
        assert!(serde_json::from_str::<TrueStage>(&json_with_pattern("x")).is_err());
    }

    fn json_with_pattern(pattern: &str) -> String {
        format!(
            r#"{{"mi_t":"T0","mi_n":"N0","mi_m":"M1b","m_categories":["M1b"],"bone_pattern":"{pattern}"}}"#
        )
    }
}
