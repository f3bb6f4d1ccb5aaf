//! Strata configuration (see README).
