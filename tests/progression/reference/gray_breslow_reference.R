# Reference numbers for Gray's test (cmprsk::cuminc) and Breslow ties (survival::coxph).
#
# Run from the repository root (R stays out of CI; the outputs are committed):
#   Rscript tests/progression/reference/gray_breslow_reference.R
#
# Inputs (in this folder): mgus2.csv, rossi.csv, rossi_prio_band.csv, synthetic_stays.csv
# (see survival_reference.R and make_synthetic.py).
# Outputs: reference_gray.json, reference_breslow.json.

suppressPackageStartupMessages({
  library(survival)
  library(cmprsk)
  library(jsonlite)
})

here <- "tests/progression/reference"
out <- function(name) file.path(here, name)
write_json_full <- function(x, name) {
  writeLines(toJSON(x, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"), out(name))
}

# ------------------------------------------------------------- Gray's test
gray_entry <- function(ftime, fstatus, group, strata = NULL, rho = 0) {
  fit <- if (is.null(strata)) {
    cuminc(ftime, fstatus, group, rho = rho, cencode = "censored")
  } else {
    cuminc(ftime, fstatus, group, strata, rho = rho, cencode = "censored")
  }
  tests <- fit$Tests
  list(cause = rownames(tests), stat = unname(tests[, "stat"]), pv = unname(tests[, "pv"]),
       df = unname(tests[, "df"]))
}

mg <- read.csv(out("mgus2.csv"), stringsAsFactors = FALSE)
mg$outcome <- c("censored", "pcm", "death")[mg$event + 1]
mg$age_group <- as.character(cut(mg$age, c(0, 65, 75, Inf), labels = c("a<65", "b65-75", "c>75")))
mg$old <- ifelse(mg$age >= 70, "70+", "<70")

stays <- read.csv(out("synthetic_stays.csv"), stringsAsFactors = FALSE)
ph1 <- subset(stays, phase == 1 & entry == "first")

write_json_full(list(
  mgus2_sex = with(mg, gray_entry(etime, outcome, sex)),
  mgus2_sex_rho1 = with(mg, gray_entry(etime, outcome, sex, rho = 1)),
  mgus2_sex_rho_neg = with(mg, gray_entry(etime, outcome, sex, rho = -0.5)),
  mgus2_sex_strata = with(mg, gray_entry(etime, outcome, sex, strata = old)),
  mgus2_age3 = with(mg, gray_entry(etime, outcome, age_group)),
  mgus2_age3_strata_rho1 = with(mg, gray_entry(etime, outcome, age_group, strata = sex, rho = 1)),
  synthetic_clinic = with(ph1, gray_entry(duration_days, outcome, clinic_id)),
  synthetic_clinic_strata = with(ph1, gray_entry(duration_days, outcome, clinic_id,
                                                 strata = compensation_claim)),
  # Clinics nested in protocols: cmprsk reports stat -1 (singular covariance).
  synthetic_clinic_nested = with(ph1, gray_entry(duration_days, outcome, clinic_id,
                                                 strata = protocol)),
  synthetic_sex_rho1 = with(ph1, gray_entry(duration_days, outcome, sex, rho = 1))
), "reference_gray.json")

# ------------------------------------------------------------ Breslow ties
`%||%` <- function(a, b) if (is.null(a)) b else a
cox_entry <- function(fit) {
  zph <- cox.zph(fit)
  list(
    terms = names(coef(fit)),
    coef = unname(coef(fit)),
    se = unname(sqrt(diag(fit$naive.var %||% fit$var))),
    robust_se = if (is.null(fit$naive.var)) NULL else unname(sqrt(diag(fit$var))),
    loglik = fit$loglik[2],
    loglik_null = fit$loglik[1],
    n_events = fit$nevent,
    zph_terms = rownames(zph$table),
    zph_chisq = unname(zph$table[, "chisq"]),
    zph_df = unname(zph$table[, "df"]),
    zph_p = unname(zph$table[, "p"])
  )
}

rossi <- read.csv(out("rossi.csv"))
rossi <- merge(rossi, read.csv(out("rossi_prio_band.csv")), by = "id")
rossi$entry <- floor(rossi$week / 3)
# Heavy ties: follow-up in quarters (1..4), entry after the first half-year for some.
rossi$quarter <- ceiling(rossi$week / 13)
rossi$q_entry <- floor((rossi$quarter - 1) / 2)

bres <- function(formula, data = rossi, ties = "breslow", ...) {
  # cluster(g) in the formula: the same as coxph(..., cluster = g).
  cox_entry(do.call(coxph, list(formula, data = data, ties = ties, ...)))
}
ph1$progressed <- ph1$outcome == "progressed"
ph1$compensation_claim <- as.logical(ph1$compensation_claim)

write_json_full(list(
  plain = bres(Surv(week, arrest) ~ fin + age + prio),
  full = bres(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio),
  robust = bres(Surv(week, arrest) ~ fin + age + prio, robust = TRUE),
  cluster = bres(Surv(week, arrest) ~ fin + age + prio + cluster(grp)),
  strata_cluster = bres(Surv(week, arrest) ~ fin + age + prio + strata(wexp) + cluster(grp)),
  factor = bres(Surv(week, arrest) ~ fin + age + prio_band),
  entry_cluster = bres(Surv(entry, week, arrest) ~ fin + age + prio + cluster(grp)),
  quarter_plain = bres(Surv(quarter, arrest) ~ fin + age + prio),
  quarter_cluster = bres(Surv(quarter, arrest) ~ fin + age + prio_band + cluster(grp)),
  quarter_strata = bres(Surv(quarter, arrest) ~ fin + age + prio + strata(wexp)),
  quarter_entry = bres(Surv(q_entry, quarter, arrest) ~ fin + age + prio + cluster(grp)),
  quarter_efron = bres(Surv(quarter, arrest) ~ fin + age + prio + cluster(grp), ties = "efron"),
  synthetic_cluster = bres(Surv(duration_days, progressed) ~ compensation_claim +
                             pain_duration_months + protocol + cluster(clinic_id), data = ph1),
  synthetic_strata = bres(Surv(duration_days, progressed) ~ compensation_claim +
                            pain_duration_months + strata(clinic_id), data = ph1)
), "reference_breslow.json")
