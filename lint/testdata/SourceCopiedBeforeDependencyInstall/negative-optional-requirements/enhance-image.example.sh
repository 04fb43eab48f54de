# enhance-image.example.sh
