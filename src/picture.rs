//! Pictures for people: MIPs, slices and contact sheets as PNG.
