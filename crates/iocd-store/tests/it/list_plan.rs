//! Listing with a filter on the properties clients look indicators up by is served by an
//! index on both databases: the plan of the very statement `list` runs is checked with
//! EXPLAIN QUERY PLAN (SQLite) and EXPLAIN (PostgreSQL, after ANALYZE), and the rows it
//! returns are checked too.

use iocd_domain::{parse_submission, time, Actor, IndicatorType, Submission};
use iocd_odata::{parse_filter, parse_list_query};
use iocd_store::{IndicatorStore, ListRequest, PostgresStore, Scope, SqliteStore, WriteLimits};
use iocd_testkit::{env, ScratchDatabase};
use serde_json::json;

const TENANT: &str = "tenant-a";
const COMMON: usize = 3000;
const RARE: usize = 5;

/// Filter, the column an index must serve it by, and how many rows it matches.
const CASES: &[(&str, &str, usize)] = &[
    ("indicatorValue eq 'rare2.example'", "indicator_value", 1),
    ("indicatorType eq 'DomainName'", "indicator_type", RARE),
    ("action eq 'Allowed'", "action", RARE),
    ("createdBy eq 'rare-app'", "created_by", RARE),
    (
        "expirationTime lt 2100-01-01T00:00:00Z",
        "expiration_time",
        RARE,
    ),
    // `in` is served by the same indexes as `eq`, in both of its list forms.
    (
        "indicatorValue in ('rare1.example','rare3.example','absent.example')",
        "indicator_value",
        2,
    ),
    ("createdBy in ['rare-app','nobody']", "created_by", RARE),
];

fn submission(body: serde_json::Value) -> Submission {
    parse_submission(&body).expect("valid submission")
}

/// Many look-alike rows and a few rare ones, so an index is the cheap plan for the rare values.
async fn fill(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(TENANT);
    let common: Vec<Submission> = (0..COMMON)
        .map(|n| {
            submission(json!({
                "indicatorValue": format!("{n:064x}"),
                "indicatorType": "FileSha256",
                "action": "BlockAndRemediate",
                "title": "common",
                "description": "common"
            }))
        })
        .collect();
    let app = Actor::new("common-app", "common");
    let results = store
        .submit(&scope, &app, common, WriteLimits::default(), time::now())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
    let rare: Vec<Submission> = (0..RARE)
        .map(|n| {
            submission(json!({
                "indicatorValue": format!("rare{n}.example"),
                "indicatorType": "DomainName",
                "action": "Allowed",
                "title": "rare",
                "description": "rare",
                "expirationTime": "2099-01-01T00:00:00Z"
            }))
        })
        .collect();
    let rare_app = Actor::new("rare-app", "rare");
    let results = store
        .submit(&scope, &rare_app, rare, WriteLimits::default(), time::now())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
}

fn request(filter: &str) -> ListRequest {
    ListRequest {
        filter: Some(parse_filter(filter).unwrap()),
        order_by: Vec::new(),
        skip: 0,
        take: 10_000,
        per_type: Vec::new(),
        only_ids: None,
    }
}

async fn check_results(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(TENANT);
    for (filter, _, expected) in CASES {
        let page = store
            .list(&scope, &request(filter), time::now())
            .await
            .unwrap();
        assert_eq!(page.indicators.len(), *expected, "{filter}");
        assert!(!page.more);
    }
    // An app with only Ti.ReadWrite sees its own rows, filter or not.
    let own = Scope {
        tenant_id: TENANT.into(),
        owner: Some("rare-app".into()),
    };
    let page = store
        .list(&own, &request("indicatorType ne 'Url'"), time::now())
        .await
        .unwrap();
    assert_eq!(page.indicators.len(), RARE);
}

#[tokio::test]
async fn sqlite_list_filters_use_indexes() {
    let database = ScratchDatabase::sqlite();
    let store = SqliteStore::open(&database.url).await.unwrap();
    fill(&store).await;
    check_results(&store).await;
    let scope = Scope::tenant_wide(TENANT);
    for (filter, column, _) in CASES {
        let plan = store
            .explain_list(&scope, &request(filter), time::now())
            .await
            .unwrap();
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN indicators")),
            "{filter} scans the table: {plan:?}"
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH indicators USING") && step.contains(column)),
            "{filter} is not served by an index on {column}: {plan:?}"
        );
    }
}

#[tokio::test]
async fn postgres_list_filters_use_indexes_and_per_type_pages_match() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    // Dropped (with FORCE, ending the store's sessions) whatever the checks find.
    let database = ScratchDatabase::postgres(&admin).await;
    let store = PostgresStore::open(&database.url).await.unwrap();
    fill(&store).await;
    fill_mixed(&store).await;
    store.analyze().await.unwrap();
    check_results(&store).await;
    per_type_pages_match_single_query(&store).await;
    narrowed_pages_hold_what_the_filter_finds(&store).await;
    let scope = Scope::tenant_wide(TENANT);
    for (filter, column, _) in CASES {
        let plan = store
            .explain_list(&scope, &request(filter), time::now())
            .await
            .unwrap();
        assert!(
            !plan.iter().any(|line| line.contains("Seq Scan")),
            "{filter} scans the table: {plan:#?}"
        );
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Cond") && line.contains(column)),
            "{filter} is not served by an index on {column}: {plan:#?}"
        );
    }
}

const MIXED_TENANT: &str = "tenant-mixed";
const FILE_TYPES: [IndicatorType; 3] = [
    IndicatorType::FileSha256,
    IndicatorType::FileSha1,
    IndicatorType::FileMd5,
];

/// File hashes of three types with titles that repeat across types, and URLs whose values sort
/// after every hash: the shape that made one walk of a column's index slow.
async fn fill_mixed(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(MIXED_TENANT);
    let mut rows: Vec<Submission> = (0..90u64)
        .map(|n| {
            let (ty, width) = match n % 3 {
                0 => ("FileSha256", 64),
                1 => ("FileSha1", 40),
                _ => ("FileMd5", 32),
            };
            submission(json!({
                "indicatorValue": format!("{:0width$x}", (n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                "indicatorType": ty,
                "action": "Allowed",
                "title": format!("title {}", n % 7),
                "description": "mixed"
            }))
        })
        .collect();
    rows.extend((0..20).map(|n| {
        submission(json!({
            "indicatorValue": format!("https://url{n}.example/"),
            "indicatorType": "Url",
            "action": "Allowed",
            "title": format!("title {}", n % 7),
            "description": "mixed"
        }))
    }));
    let app = Actor::new("mixed-app", "mixed");
    let results = store
        .submit(&scope, &app, rows, WriteLimits::default(), time::now())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
}

fn sorted(order_by: &str, skip: u64, take: u64, per_type: bool) -> ListRequest {
    let query = parse_list_query(&[
        (
            "$filter".to_string(),
            "indicatorType in ('FileSha256','FileSha1','FileMd5')".to_string(),
        ),
        ("$orderby".to_string(), order_by.to_string()),
    ])
    .unwrap();
    ListRequest {
        filter: query.filter,
        order_by: query.order_by,
        skip,
        take,
        per_type: if per_type {
            FILE_TYPES.to_vec()
        } else {
            Vec::new()
        },
        only_ids: None,
    }
}

const SORTS: [&str; 6] = [
    "title asc,id asc",
    "title desc,id desc",
    "indicatorValue asc,id asc",
    "indicatorValue desc,id desc",
    "indicatorType asc,id asc",
    "indicatorType desc,id desc",
];

/// Read per type, a page holds the same rows in the same order as the single query, at
/// every offset, and `more` agrees. (The values are lower-case, so their normalised form,
/// which a per-type value sort follows, has the same order.)
async fn per_type_pages_match_single_query(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(MIXED_TENANT);
    let ids =
        |page: &iocd_store::ListPage| page.indicators.iter().map(|i| i.id).collect::<Vec<_>>();
    for order in SORTS {
        for (skip, take) in [(0, 10), (7, 10), (25, 30), (80, 10), (85, 10)] {
            let single = store
                .list(&scope, &sorted(order, skip, take, false), time::now())
                .await
                .unwrap();
            let split = store
                .list(&scope, &sorted(order, skip, take, true), time::now())
                .await
                .unwrap();
            assert_eq!(ids(&split), ids(&single), "{order}, skip {skip}");
            assert_eq!(split.more, single.more, "{order}, skip {skip}");
            assert!(
                split
                    .indicators
                    .iter()
                    .all(|i| FILE_TYPES.contains(&i.indicator_type)),
                "{order}: a URL in the file hashes"
            );
        }
        let all = store
            .list(&scope, &sorted(order, 0, 1000, true), time::now())
            .await
            .unwrap();
        assert_eq!(all.indicators.len(), 90, "{order}");
        assert!(!all.more);
    }
}

/// A SQLite store holding `fill_mixed`'s rows (its file lives as long as the database guard).
async fn mixed_sqlite_store() -> (ScratchDatabase, SqliteStore) {
    let database = ScratchDatabase::sqlite();
    let store = SqliteStore::open(&database.url).await.unwrap();
    fill_mixed(&store).await;
    (database, store)
}

#[tokio::test]
async fn sqlite_sorted_pages_per_type_use_the_type_indexes() {
    let (_database, store) = mixed_sqlite_store().await;
    per_type_pages_match_single_query(&store).await;
    let scope = Scope::tenant_wide(MIXED_TENANT);
    for (order, index) in [
        ("title desc,id desc", "indicators_type_title"),
        // The upsert key's index: (tenant, type, value_key, action).
        (
            "indicatorValue desc,id desc",
            "sqlite_autoindex_indicators_2",
        ),
    ] {
        let plan = store
            .explain_list(&scope, &sorted(order, 0, 100, true), time::now())
            .await
            .unwrap();
        let arms = plan
            .iter()
            .filter(|step| step.starts_with(&format!("SEARCH indicators USING INDEX {index}")))
            .count();
        assert_eq!(arms, 3, "{order}: each type's arm walks {index}: {plan:#?}");
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN indicators")),
            "{order} scans the table: {plan:#?}"
        );
        // The merge sorts each arm's page (skip + take + 1 rows); an arm that sorted its
        // type's rows itself would add a sort of its own. (Ties of one value_key under several
        // actions are put in id order: "RIGHT PART OF ORDER BY", a sort of those few rows.)
        let sorts = plan
            .iter()
            .filter(|step| step.starts_with("USE TEMP B-TREE FOR ORDER BY"))
            .count();
        assert_eq!(sorts, 3, "{order}: an arm sorts its whole type: {plan:#?}");
    }
}

/// The portal's search hands the list the ids its search index found (`only_ids`), besides
/// the `contains` conditions: the rows are then read by their key, whatever the sort and however
/// many ids, and a value sort that stays per type reads them by key in each arm.
#[tokio::test]
async fn sqlite_a_search_narrowed_to_ids_reads_rows_by_key() {
    let (_database, store) = mixed_sqlite_store().await;
    narrowed_pages_hold_what_the_filter_finds(&store).await;
    let scope = Scope::tenant_wide(MIXED_TENANT);
    for (order, per_type) in [
        ("creationTimeDateTimeUtc desc,id desc", false),
        ("title asc,id asc", false),
        ("id desc", false),
        ("indicatorValue desc,id desc", true),
    ] {
        for ids in [40, SEARCH_IDS as i64] {
            let plan = store
                .explain_list(&scope, &narrowed(order, per_type, ids), time::now())
                .await
                .unwrap();
            let by_key = plan
                .iter()
                .filter(|step| {
                    step.starts_with("SEARCH indicators USING PRIMARY KEY (tenant_id=? AND id=?)")
                })
                .count();
            assert_eq!(
                by_key,
                if per_type { 3 } else { 1 },
                "{order}, {ids} ids: rows not read by key: {plan:#?}"
            );
        }
    }
}

/// The file hashes whose value or title holds "title 3", narrowed to the ids 1..=`ids`.
fn narrowed(order: &str, per_type: bool, ids: i64) -> ListRequest {
    let query = parse_list_query(&[
        (
            "$filter".to_string(),
            "indicatorType in ('FileSha256','FileSha1','FileMd5') \
             and (contains(indicatorValue,'title 3') or contains(title,'title 3'))"
                .to_string(),
        ),
        ("$orderby".to_string(), order.to_string()),
    ])
    .unwrap();
    ListRequest {
        filter: query.filter,
        order_by: query.order_by,
        skip: 0,
        take: 100,
        per_type: if per_type {
            FILE_TYPES.to_vec()
        } else {
            Vec::new()
        },
        only_ids: Some((1..=ids).collect()),
    }
}

/// Narrowed to every id, a page holds what the filter alone finds; narrowed to some, only
/// those of them it finds; narrowed to none, nothing.
async fn narrowed_pages_hold_what_the_filter_finds(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(MIXED_TENANT);
    let ids = |page: iocd_store::ListPage| page.indicators.iter().map(|i| i.id).collect::<Vec<_>>();
    for (order, per_type) in [("id desc", false), ("indicatorValue desc,id desc", true)] {
        let mut unnarrowed = narrowed(order, per_type, 0);
        unnarrowed.only_ids = None;
        let all = ids(store.list(&scope, &unnarrowed, time::now()).await.unwrap());
        // "title 3" is the title of every seventh file hash.
        assert_eq!(all.len(), (0..90).filter(|n| n % 7 == 3).count());
        let every = narrowed(order, per_type, SEARCH_IDS as i64);
        assert_eq!(
            ids(store.list(&scope, &every, time::now()).await.unwrap()),
            all
        );
        let mut some = narrowed(order, per_type, 0);
        some.only_ids = Some(
            all.iter()
                .copied()
                .step_by(2)
                .chain([-1, 1_000_000])
                .collect(),
        );
        let expected: Vec<i64> = all.iter().copied().step_by(2).collect();
        assert_eq!(
            ids(store.list(&scope, &some, time::now()).await.unwrap()),
            expected
        );
        let none = narrowed(order, per_type, 0);
        assert!(store
            .list(&scope, &none, time::now())
            .await
            .unwrap()
            .indicators
            .is_empty());
    }
}

/// As many ids as the portal hands over at most (`portal::indicators::SEARCH_IDS`).
const SEARCH_IDS: usize = 10_000;
