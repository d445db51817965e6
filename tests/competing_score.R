# riskRegression's Score (cause = 1, AUC and Brier, KM censoring weights) of predicted cumulative
# incidences given in a CSV (`time,status,<one column per time>`, header of the prediction
# columns = the times), for tests/competing_stage.rs (which writes the CSV from a `train` run).
#
#   Rscript tests/competing_score.R PREDICTIONS.csv
#
# Prints {"times": […], "auc": […], "brier": […]} as JSON.
suppressPackageStartupMessages({
  library(riskRegression)
  library(prodlim)
  library(survival)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], check.names = FALSE)
times <- as.numeric(names(d)[-(1:2)])
m <- as.matrix(d[, -(1:2)])
s <- Score(list(m = m), formula = Hist(time, status) ~ 1, data = d[, 1:2], times = times, cause = 1,
           metrics = c("auc", "brier"), null.model = FALSE, conf.int = FALSE, cens.model = "km",
           split.method = "none")
cat(toJSON(list(times = times, auc = s$AUC$score$AUC, brier = s$Brier$score$Brier), digits = NA, auto_unbox = FALSE))
