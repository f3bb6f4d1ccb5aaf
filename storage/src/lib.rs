//! Strata log storage (see README).
