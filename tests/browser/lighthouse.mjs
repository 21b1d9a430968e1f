// Lighthouse's own command line (the version package.json pins), ended as soon as the
// report is written. Left to itself, node waits out a five-second timer that Lighthouse's
// image gatherer never clears (core/gather/gatherers/image-elements.js): three to four
// seconds of nothing after every run. test_lighthouse.py runs this with --output-path.
import {begin} from "lighthouse/cli/bin.js";

await begin();
process.exit();
