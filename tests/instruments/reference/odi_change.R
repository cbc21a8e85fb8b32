# Reference numbers for tests/instruments/test_change.py (run: Rscript odi_change.R).
# Change from baseline on the ODI for 13 hand-made patients: mean change with a
# t interval (t.test), baseline SD (sd, n - 1), Jacobson-Truax RCI with the
# registry's reliability 0.90, categories with the clinical cut-off 21
# (normal range: ODI < 21) and responders by 10 points.
pairs <- read.csv("odi_pairs.csv")
change <- pairs$follow_up_score - pairs$baseline_score
tt <- t.test(change)
sd_baseline <- sd(pairs$baseline_score)
s_diff <- sqrt(2) * sd_baseline * sqrt(1 - 0.90)
rci <- change / s_diff
better <- -rci                      # ODI: higher is worse
crossed <- pairs$baseline_score >= 21 & pairs$follow_up_score < 21
category <- ifelse(better > 1.96, ifelse(crossed, "recovered", "improved"),
                   ifelse(better < -1.96, "deteriorated", "unchanged"))
patients <- data.frame(patient_id = pairs$patient_id, change = change, rci = rci,
                       category = category, responder = -change >= 10)
write.csv(patients, "odi_change_r_patients.csv", row.names = FALSE)
summary <- data.frame(n = length(change), mean_change = unname(tt$estimate),
                      std_error = unname(tt$stderr), ci_lower = tt$conf.int[1],
                      ci_upper = tt$conf.int[2], sd_baseline = sd_baseline, s_diff = s_diff)
write.csv(summary, "odi_change_r_summary.csv", row.names = FALSE)
