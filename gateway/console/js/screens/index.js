// The screens and who sees them (the API scopes what each role reads; this only hides what it would refuse).
import { Assessment } from "./assessment.js";
import { Board } from "./board.js";
import { Classification } from "./classification.js";
import { Dispatch } from "./dispatch.js";
import { DistrictMap } from "./map.js";
import { Tracing } from "./tracing.js";

const OFFICERS = ["admin", "command", "squadron", "station"];
const DISTRICT = ["admin", "command"];

export const SCREENS = [
  { name: "board", view: Board, roles: OFFICERS },
  { name: "tracing", view: Tracing, roles: OFFICERS },
  { name: "assessment", view: Assessment, roles: OFFICERS },
  { name: "map", view: DistrictMap, roles: OFFICERS },
  { name: "classification", view: Classification, roles: DISTRICT },
  { name: "dispatch", view: Dispatch, roles: OFFICERS },
];
