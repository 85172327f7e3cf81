"""Lightning's ``CSVLogger``, made safe for processes that each write part of one metrics.csv.

With ``ddp_spawn`` / ``ddp_fork`` the fit and the test stage run in fresh worker processes that
all start from the main process's writer, which never saw the training columns. When the test
workers add their columns, Lightning rewrites metrics.csv with only the columns *they* know and
fails on the rows fit wrote (``dict contains fields not in fieldnames``). This writer keeps the
columns already in the file.
"""

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _ColumnKeepingWriter(ExperimentWriter):
    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            on_disk = next(csv.reader(file), [])
        # in place: save() goes on to append rows with self.metrics_keys, the same list
        fieldnames[:] = sorted(set(fieldnames) | set(on_disk))
        super()._rewrite_with_new_header(fieldnames)


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` whose metrics.csv keeps the columns earlier processes wrote."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ColumnKeepingWriter(log_dir=self.log_dir)
        return self._experiment
