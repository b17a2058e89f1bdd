"""The heavy figures the web pages show (home tiles, campaign results, attribution models,
experiment read-outs), computed at the end of a run and kept in the warehouse."""
