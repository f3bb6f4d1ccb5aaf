//! Strata wire protocol (see README).
