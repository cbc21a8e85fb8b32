# Reference numbers for the multi-state model compared across groups (fit_multistate(by=)).
#
# Run from the repository root (R stays out of CI; the outputs are committed):
#   .venv/bin/python tests/progression/reference/make_multistate_by.py
#   Rscript tests/progression/reference/multistate_by_reference.R
#
# Input: synthetic_msm_by.csv (stepanalytics.synth, seed 2026, 300 patients, 6 clinics):
# counting-process rows with the patient columns clinic_id, protocol, compensation_claim.
# For each grouping column g:
#   fit <- survfit(Surv(tstart, tstop, to) ~ g, data, id = patient_id, istate = from,
#                  influence = TRUE)
# Outputs: reference_msm_by_<g>_curve.csv (pstate and std.err at every time of every group),
# reference_msm_by.json (summary(fit, rmean = 365)$table: rmean and se(rmean);
# summary(fit, times = c(0, 90, 180, 365), extend = TRUE): pstate and std.err).

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

here <- "tests/progression/reference"
out <- function(name) file.path(here, name)
write_csv_full <- function(x, name) {
  x[] <- lapply(x, function(col) {
    if (!is.numeric(col)) return(col)
    ifelse(is.na(col), NA, sprintf("%.17g", col))
  })
  write.csv(x, out(name), row.names = FALSE, na = "")
}

msm <- read.csv(out("synthetic_msm_by.csv"), stringsAsFactors = FALSE)
states <- sort(unique(c(msm$from_state, setdiff(msm$to_state, "censored"))))
msm$to <- factor(msm$to_state, levels = c("censored", states))
msm$from <- factor(msm$from_state, levels = states)
msm$compensation_claim <- as.character(msm$compensation_claim)  # "True" / "False" as in Python
horizon <- 365
days <- c(0, 90, 180, 365)

by_group <- function(column) {
  msm$g <- msm[[column]]
  fit <- survfit(Surv(tstart, tstop, to) ~ g, data = msm, id = patient_id, istate = from,
                 influence = TRUE)
  group <- sub("^g=", "", rep(names(fit$strata), fit$strata))
  curve <- data.frame(group = group, time = fit$time, fit$pstate, fit$std.err)
  names(curve) <- c("group", "time", paste0("p_", fit$states), paste0("se_", fit$states))
  write_csv_full(curve, paste0("reference_msm_by_", column, "_curve.csv"))
  rm <- summary(fit, rmean = horizon)$table
  at <- summary(fit, times = days, extend = TRUE)
  list(
    states = fit$states,
    groups = sub("^g=", "", names(fit$strata)),
    rmean = list(row = rownames(rm), rmean = unname(rm[, "rmean"]),
                 se = unname(rm[, "se(rmean)"])),
    at = list(group = sub("^g=", "", as.character(at$strata)), time = at$time,
              pstate = unname(at$pstate), std_err = unname(at$std.err))
  )
}

result <- lapply(c(clinic_id = "clinic_id", protocol = "protocol",
                   compensation_claim = "compensation_claim"), by_group)
result$horizon <- horizon
result$versions <- list(R = R.version.string, survival = as.character(packageVersion("survival")))
writeLines(toJSON(result, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           out("reference_msm_by.json"))
