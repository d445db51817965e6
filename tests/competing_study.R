# Reference values for tests/competing_study.rs: riskRegression's absolute risk of cause 1 from
# cause-specific Cox models (CSC + predictRisk) and its competing-risks time-dependent AUC and
# Brier score (Score, cause = 1) on the Melanoma data of tests/data/melanoma.csv (see
# tests/data/README.md).
#
#   Rscript tests/competing_study.R [OUT.json]   (default: stdout)
#
# Run from the repository root. The Rust test runs this live (with SPATIA_REQUIRE_R=1 a missing
# Rscript is a failure) and compares against the committed tests/competing_study.json.
# The markers scored are written out (`markers`), so Rust scores exactly the same numbers.
suppressPackageStartupMessages({
  library(riskRegression)
  library(prodlim)
  library(survival)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv("tests/data/melanoma.csv")
covs <- c("age", "sex", "thick", "ulcer")
times <- c(365, 1000, 1826, 3000)

# cause-specific Cox models (Efron ties, coxph's default) and the predicted CIF of cause 1
csc <- CSC(Hist(time, status) ~ age + sex + thick + ulcer, data = d)
risk_exp <- predictRisk(csc, newdata = d, times = times, cause = 1, product.limit = FALSE)
risk_pl <- predictRisk(csc, newdata = d, times = times, cause = 1, product.limit = TRUE)
coefs <- lapply(csc$models, function(m) unname(coef(m)))

# Score: AUC (Blanche et al. 2013, definition 2) and Brier score of cause 1, KM censoring weights
score <- function(m) {
  s <- Score(list(m = m), formula = Hist(time, status) ~ 1, data = d, times = times, cause = 1,
             metrics = c("auc", "brier"), null.model = FALSE, conf.int = FALSE, cens.model = "km",
             split.method = "none")
  list(auc = s$AUC$score$AUC, brier = s$Brier$score$Brier)
}
# a marker with ties (rounded risks) and one per time
marker_tied <- round(risk_exp, 2)
out <- list(
  times = times,
  covariates = covs,
  csc = list(coef_cause1 = coefs[[1]], coef_cause2 = coefs[[2]],
             risk_exp = unname(risk_exp), risk_pl = unname(risk_pl)),
  markers = list(exp = unname(risk_exp), tied = unname(marker_tied)),
  score = list(exp = score(risk_exp), tied = score(marker_tied))
)
txt <- toJSON(out, digits = NA, auto_unbox = TRUE, matrix = "rowmajor")
if (length(args) >= 1) writeLines(txt, args[1]) else writeLines(txt)
