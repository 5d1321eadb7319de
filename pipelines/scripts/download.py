import sys

from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.panoptic.fetch import DownloadError
from annotate.stages import download

try:
    with logged(snakemake.log[0]):
        print(download.format_summary(download.run(resolve_config(snakemake.config), snakemake.params.root,
                                                   snakemake.wildcards.sequence, snakemake.output.summary)))
except DownloadError as err:
    # One line (the URL and the cause) for the console; the log has the details.
    sys.exit(f"download {snakemake.wildcards.sequence}: {err}")
