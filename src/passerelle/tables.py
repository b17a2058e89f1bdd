"""Names of tables Passerelle keeps in the warehouse that read-only commands look at,
importable without the engine layer (Ibis, pyarrow)."""

from __future__ import annotations

QUARANTINE_TABLE = "quarantine"  # rows that could not be loaded or staged
CHECK_RESULTS_TABLE = "_passerelle_check_results"  # every data-quality check's outcome
SEGMENT_STATUS_TABLE = "segment_status"  # each segment's last refresh, members, next refresh
SEGMENT_HISTORY_TABLE = "segment_membership_history"  # who entered and left, when
AUDIENCE_MEMBERS_TABLE = "audience_members"  # an audience's people, by group
AUDIENCE_BUILDS_TABLE = "audience_builds"  # each audience's last build and its counts
PERSON_MAP_TABLE = "person_map"  # each source record's person
CUSTOMER_RECORDS_TABLE = "customer_records"  # customer records as identity read them
ANONYMOUS_IDS_TABLE = "identity_anonymous_ids"  # anonymous ids stitched to a person
FIGURES_TABLE = "_passerelle_figures"  # figures the pages show, stamped with their data
STEP_STATE_TABLE = "_passerelle_step_state"  # what each step last saw (passerelle.state)
TRAIT_DEFINITIONS_TABLE = "trait_definitions"  # each trait: computed when, for whom, status
LINEAGE_COLUMNS = ("_load_id", "_loaded_at", "_source_file", "_source_row")  # raw tables
