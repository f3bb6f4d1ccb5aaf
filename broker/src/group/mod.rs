//! Group coordinator (classic consumer-group protocol). See group helper.
