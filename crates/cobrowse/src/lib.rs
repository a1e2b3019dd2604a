//! Agent Assist co-browsing (visitor side): work in progress.
