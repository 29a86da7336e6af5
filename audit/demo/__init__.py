"""`audit demo`: a small web app (Flask) that shows what TransFG's Part Selection Module picks
for an uploaded image, through the same code as `audit explain`."""
