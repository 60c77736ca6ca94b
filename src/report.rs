//! The analysis report (DESIGN S9).
